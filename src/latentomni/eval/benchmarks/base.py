"""What a benchmark adapter declares: how to load its official file, which breakdowns its paper reports, what
it has to say about the file beyond accuracy, and (optionally) how to write the official output format."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from latentomni.data.questions import EvalItem


class Loader(Protocol):
    """An adapter's ``load``: the items of an official annotation file, in file order."""

    def __call__(
        self, annotations: Path, media_root: Path, *, allow_absolute_media: bool = False
    ) -> list[EvalItem]: ...


# (out_dir, items, predictions by qid) -> the files written
OfficialWriter = Callable[[Path, list[EvalItem], Mapping[str, Mapping[str, Any]]], list[Path]]
# items -> the ``notes`` section of results.json (named lists of records the user should know about)
Notes = Callable[[list[EvalItem]], dict[str, Any]]


@dataclass(frozen=True)
class Breakdown:
    """Accuracy grouped by one ``EvalItem.meta`` key, in the order the benchmark's paper lists the groups
    (groups not named in ``order`` follow alphabetically)."""

    key: str
    title: str
    order: tuple[str, ...] = ()


@dataclass(frozen=True)
class Benchmark:
    """A registry entry.

    ``load(annotations, media_root)`` returns the items in file order; media paths that leave the media
    root are refused unless the entry was made with ``allow_absolute_media=True`` (``dataclasses.replace``;
    the ``eval`` command's ``--allow-absolute-media``). ``notes`` and ``official`` are optional hooks: what
    results.json should list about the file (records whose fields disagree, items outside the paper's
    groups), and the benchmark's own output format, written beside results.json.
    """

    name: str  # registry name and results key, e.g. "daily_omni"
    title: str  # column header in comparison tables, e.g. "Daily-Omni"
    loader: Loader
    breakdowns: tuple[Breakdown, ...]
    aliases: tuple[str, ...] = field(default=())
    notes_of: Notes | None = None
    official: OfficialWriter | None = None
    allow_absolute_media: bool = False

    def load(self, annotations: str | Path, media_root: str | Path) -> list[EvalItem]:
        """The items of ``annotations`` with media under ``media_root``, in file order."""
        return self.loader(Path(annotations), Path(media_root), allow_absolute_media=self.allow_absolute_media)

    def notes(self, items: list[EvalItem]) -> dict[str, Any]:
        """The ``notes`` section of results.json for ``items``; empty when the benchmark has nothing to say."""
        return self.notes_of(items) if self.notes_of is not None else {}

    def write_official(
        self, out_dir: str | Path, items: list[EvalItem], predictions: Mapping[str, Mapping[str, Any]]
    ) -> list[Path]:
        """Write the benchmark's official output file(s) into ``out_dir``; a no-op returning [] when it has
        none. Called by the runner right after results.json, with the same items and predictions."""
        if self.official is None:
            return []
        return self.official(Path(out_dir), items, predictions)
