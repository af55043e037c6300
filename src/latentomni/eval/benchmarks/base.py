"""What a benchmark adapter declares: how to load its official file, and which breakdowns its paper reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from latentomni.eval.items import EvalItem


@dataclass(frozen=True)
class Breakdown:
    """Accuracy grouped by one ``EvalItem.meta`` key, in the order the benchmark's paper lists the groups
    (groups not named in ``order`` follow alphabetically)."""

    key: str
    title: str
    order: tuple[str, ...] = ()


@dataclass(frozen=True)
class Benchmark:
    """A registry entry. ``load(annotations, media_root)`` returns the items in file order."""

    name: str  # registry name and results key, e.g. "daily_omni"
    title: str  # column header in comparison tables, e.g. "Daily-Omni"
    load: Callable[[Path, Path], list[EvalItem]]
    breakdowns: tuple[Breakdown, ...]
    aliases: tuple[str, ...] = field(default=())
