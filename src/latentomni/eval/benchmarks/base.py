"""What a benchmark adapter declares: where its records keep the question, options and answer, which items a
record holds, which breakdowns its paper reports, what it has to say about the file beyond accuracy, and
(optionally) how to write the official output format.

One skeleton reads every adapter's file (``Benchmark.load``): the file's records (``load_records``), the items
of each (the adapter's ``records`` hook, which says only what is its own: ids, media, breakdown keys), their
question, options and gold letter read by the benchmark's ``Fields``, the ids checked unique. As in lmms-eval,
a task declares its fields and the harness owns the loop, so a fix to the loop is a fix for every benchmark.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from latentomni.data.questions import EvalItem
from latentomni.eval.annotations import (
    QidAllocator,
    Record,
    check_unique_qids,
    load_records,
    media_file,
    normalise_answer,
    normalise_options,
)

log = logging.getLogger(__name__)


class Loader(Protocol):
    """A whole-file ``load``, for a benchmark whose items are not read record by record with ``Fields``:
    the items of an official annotation file, in file order."""

    def __call__(
        self, annotations: Path, media_root: Path, *, allow_absolute_media: bool = False
    ) -> list[EvalItem]: ...


# (out_dir, items, predictions by qid) -> the files written
OfficialWriter = Callable[[Path, list[EvalItem], Mapping[str, Mapping[str, Any]]], list[Path]]
# items -> the ``notes`` section of results.json: named sections {"n", "about", "records"} listing records the
# user should know about; a section with n > 0 is also logged when the file is loaded
Notes = Callable[[list[EvalItem]], dict[str, Any]]


@dataclass(frozen=True)
class Fields:
    """Where a benchmark's question records keep the question, its options and the gold answer: the names
    accepted for each, the official one first. Errors name that first one (a record missing them all lists
    every name), so a message points at the field of the benchmark's own documentation."""

    question: tuple[str, ...] = ("question",)
    options: tuple[str, ...] = ("options", "choices")
    answer: tuple[str, ...] = ("answer",)

    def gold(self, q: Record, options: list[str]) -> str:
        """The gold letter of ``q``; a benchmark whose records give it in more than one way overrides this."""
        return normalise_answer(q.require(*self.answer), options, q, self.answer[0])


@dataclass
class Source:
    """One annotation file being read, as the adapter's ``records`` hook sees it: the benchmark and its
    ``Fields``, where the media lie (and whether they may lie outside ``media_root``), and the ids handed to
    questions that bring none (``<video>#<n>``, counted over the whole file)."""

    benchmark: str
    fields: Fields
    media_root: Path
    allow_absolute_media: bool = False
    qids: QidAllocator = field(default_factory=QidAllocator)

    def media(self, rec: Record, names: Sequence[str], *, field: str, required: bool = True) -> Path | None:
        """The media file ``rec`` names (``annotations.media_file``): the first of ``names`` under the media
        root that exists, kept inside the root unless the benchmark allows absolute media."""
        return media_file(
            rec, self.media_root, names, field=field, allow_absolute=self.allow_absolute_media, required=required
        )

    def item(
        self,
        q: Record,
        *,
        qid: str,
        video: Path | None,
        meta: dict[str, str],
        audio: Path | None = None,
        use_audio: bool = True,
    ) -> EvalItem:
        """The item of question record ``q``: its options, gold letter and question text read by the
        benchmark's ``Fields`` (in that order), with what the adapter worked out itself."""
        fields = self.fields
        options = normalise_options(q.require(*fields.options), q, fields.options[0])
        answer = fields.gold(q, options)
        return EvalItem(
            benchmark=self.benchmark,
            qid=qid,
            question=q.require_text(*fields.question),
            options=options,
            answer=answer,
            video=video,
            audio=audio,
            use_audio=use_audio,
            meta=meta,
        )


# (top-level record, source) -> the items the record holds, in file order
RecordItems = Callable[[Record, Source], Iterable[EvalItem]]


def nested_questions(rec: Record, key: str = "questions") -> Iterator[Record] | None:
    """The question records a video entry nests under ``key`` (located as ``<key>[k]``), or None when the
    record is a question itself (the flat export of the same benchmark)."""
    questions = rec.get(key)
    if not isinstance(questions, list):
        return None
    return (rec.child(q, f"{key}[{k}]") for k, q in enumerate(questions))


@dataclass(frozen=True)
class Breakdown:
    """Accuracy grouped by one ``EvalItem.meta`` key, in the order the benchmark's paper lists the groups
    (groups not named in ``order`` follow alphabetically). The title results.json and the tables show is the
    key in words ("question_type": "Question type") unless the paper words it otherwise."""

    key: str
    title: str = ""
    order: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", self.key.replace("_", " ").capitalize())


@dataclass(frozen=True)
class Benchmark:
    """A registry entry.

    ``load(annotations, media_root)`` returns the items in file order: read record by record through the
    ``records`` hook and ``fields`` (the usual case), or by a whole-file ``loader``. Media paths that leave
    the media root are refused unless the entry was made with ``allow_absolute_media=True``
    (``dataclasses.replace``; the ``eval`` command's ``--allow-absolute-media``). ``notes`` and ``official``
    are optional hooks: what results.json should list about the file (records whose fields disagree, items
    outside the paper's groups), and the benchmark's own output format, written beside results.json.
    """

    name: str  # registry name and results key, e.g. "daily_omni"
    title: str  # column header in comparison tables, e.g. "Daily-Omni"
    loader: Loader | None = None
    breakdowns: tuple[Breakdown, ...] = ()
    aliases: tuple[str, ...] = field(default=())
    notes_of: Notes | None = None
    official: OfficialWriter | None = None
    allow_absolute_media: bool = False
    records: RecordItems | None = None
    fields: Fields = field(default_factory=Fields)

    def __post_init__(self) -> None:
        if (self.loader is None) == (self.records is None):
            raise ValueError(f"benchmark {self.name!r}: give exactly one of records= (per record) and loader=")

    def load(self, annotations: str | Path, media_root: str | Path) -> list[EvalItem]:
        """The items of ``annotations`` with media under ``media_root``, in file order."""
        annotations, media_root = Path(annotations), Path(media_root)
        if self.loader is not None:
            items = self.loader(annotations, media_root, allow_absolute_media=self.allow_absolute_media)
        else:
            assert self.records is not None  # __post_init__
            source = Source(self.name, self.fields, media_root, self.allow_absolute_media)
            items = [item for rec in load_records(annotations) for item in self.records(rec, source)]
            check_unique_qids((it.qid for it in items), annotations)
        self._log_notes(annotations, items)
        return items

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

    def _log_notes(self, annotations: Path, items: list[EvalItem]) -> None:
        """Say at load time what results.json will list under ``notes``, so that a user sees it before the run."""
        for key, found in self.notes(items).items():
            if isinstance(found, Mapping) and found.get("n") and found.get("records"):
                log.warning(
                    "%s: %d of %d questions: %s (e.g. %s); listed in results.json under notes.%s",
                    annotations, found["n"], len(items), found.get("about", key), found["records"][0], key,
                )
