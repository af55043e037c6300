"""Quality filter and category balance of the AVQA pool (Sec. 3.3, "AVQA Data Synthesis & Filtering").

"Samples with a total score below 13 are discarded, and the ratio between any two adjacent categories
is constrained to be within 3x." Read literally: sort the categories by size; each category may be at
most ``max_ratio`` times the next smaller one. :func:`balanced_targets` computes the largest sizes
satisfying that (only down-sampling, never inventing samples); :func:`select_balanced` picks which
samples to keep, deterministically.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TypeVar

__all__ = ["balanced_targets", "is_balanced", "passes_threshold", "select_balanced"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def passes_threshold(scores: Iterable[int], min_total: int = 13) -> bool:
    """Keep a QA pair whose judge scores sum to at least ``min_total`` (paper: 13 of 15)."""
    return sum(scores) >= min_total


def balanced_targets(counts: Mapping[K, int], max_ratio: float = 3.0) -> dict[K, int]:
    """Largest per-category sizes ``t <= counts`` such that, sorted by size, adjacent sizes differ by at
    most ``max_ratio``.

    Walk from the smallest category up, capping each at ``floor(max_ratio * target of the next smaller)``.
    The caps keep the sort order (a capped size is still >= the smaller neighbour's), so checking
    adjacent pairs in the new order checks the same pairs; and no category is cut more than needed,
    because the smallest category is never cut and every cap is the loosest that satisfies its pair.
    Categories with zero samples do not take part.
    """
    if max_ratio < 1:
        raise ValueError(f"max_ratio must be >= 1, got {max_ratio}")
    present = sorted(((k, c) for k, c in counts.items() if c > 0), key=lambda kc: (kc[1], str(kc[0])))
    targets: dict[K, int] = {k: 0 for k, c in counts.items() if c <= 0}
    previous: int | None = None
    for key, count in present:
        target = count if previous is None else min(count, math.floor(max_ratio * previous))
        targets[key] = target
        previous = target
    return targets


def is_balanced(counts: Mapping[K, int], max_ratio: float = 3.0) -> bool:
    """Every pair of adjacent categories (sorted by size, zeros ignored) within ``max_ratio``."""
    sizes = sorted(c for c in counts.values() if c > 0)
    return all(b <= max_ratio * a for a, b in itertools.pairwise(sizes))


def _tiebreak(seed: int, item_id: str) -> str:
    return hashlib.sha256(f"{seed}:{item_id}".encode()).hexdigest()


def select_balanced(
    items: Iterable[T],
    *,
    category: Callable[[T], K],
    item_id: Callable[[T], str],
    quality: Callable[[T], float] = lambda _item: 0.0,
    max_ratio: float = 3.0,
    seed: int = 0,
) -> tuple[list[T], list[T]]:
    """Split ``items`` into (kept, removed) so that kept category sizes equal :func:`balanced_targets`.

    Within a category the highest ``quality`` is kept first; ties are broken by a seeded hash of the
    id, so the choice depends neither on input order nor on Python's hash randomisation.
    """
    groups: dict[K, list[T]] = defaultdict(list)
    for item in items:
        groups[category(item)].append(item)
    targets = balanced_targets({k: len(v) for k, v in groups.items()}, max_ratio)
    kept: list[T] = []
    removed: list[T] = []
    for key, members in groups.items():
        ranked = sorted(members, key=lambda it: (-quality(it), _tiebreak(seed, item_id(it))))
        kept.extend(ranked[: targets[key]])
        removed.extend(ranked[targets[key] :])
    return kept, removed
