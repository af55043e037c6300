"""Score threshold and category balance (Sec. 3.3): checked on plain numbers."""

from __future__ import annotations

import itertools
import random

import pytest

from latentomni.synth.balance import balanced_targets, is_balanced, passes_threshold, select_balanced


@pytest.mark.parametrize("scores, keep", [((5, 4, 4), True), ((5, 5, 3), True), ((4, 4, 4), False), ((1, 1, 1), False)])
def test_threshold_is_a_total_of_13(scores, keep):
    assert passes_threshold(scores, 13) is keep


@pytest.mark.parametrize(
    "counts, expected",
    [
        ({"a": 1, "b": 2, "c": 7}, {"a": 1, "b": 2, "c": 6}),  # 7 > 3 * 2: capped at 6
        ({"a": 1, "b": 10, "c": 10}, {"a": 1, "b": 3, "c": 9}),  # a chain of caps
        ({"a": 5, "b": 15, "c": 45}, {"a": 5, "b": 15, "c": 45}),  # exactly 3x is allowed
        ({"a": 4, "b": 4, "c": 4}, {"a": 4, "b": 4, "c": 4}),
        ({"a": 0, "b": 7}, {"a": 0, "b": 7}),  # an empty category takes no part
        ({"x": 100}, {"x": 100}),
        ({}, {}),
    ],
)
def test_balanced_targets_on_numbers(counts, expected):
    assert balanced_targets(counts, 3.0) == expected


def test_balanced_targets_are_balanced_maximal_and_never_grow():
    rng = random.Random(0)
    for _ in range(300):
        counts = {f"c{i}": rng.randint(0, 400) for i in range(rng.randint(1, 10))}
        ratio = rng.choice([1.5, 2.0, 3.0])
        targets = balanced_targets(counts, ratio)
        assert is_balanced(targets, ratio)
        assert all(0 <= targets[k] <= counts[k] for k in counts)
        # maximal: adding one sample to any capped category breaks the balance
        for k in counts:
            if targets[k] < counts[k]:
                assert not is_balanced({**targets, k: targets[k] + 1}, ratio)


def test_balanced_targets_beat_every_alternative_on_small_cases():
    """Exhaustive over all down-samplings of small pools: no balanced choice keeps more samples."""
    for counts in [(1, 4, 9), (2, 2, 13), (1, 3, 3, 12), (3, 11, 2)]:
        keys = [f"k{i}" for i in range(len(counts))]
        best = max(sum(c) for c in itertools.product(*(range(1, n + 1) for n in counts))
                   if is_balanced(dict(zip(keys, c, strict=True)), 3.0))
        assert sum(balanced_targets(dict(zip(keys, counts, strict=True)), 3.0).values()) == best


def test_select_balanced_keeps_best_quality_and_is_deterministic():
    items = [{"id": f"t{i}", "cat": "temporal", "q": i} for i in range(7)]
    items += [{"id": "a0", "cat": "av", "q": 1}, {"id": "a1", "cat": "av", "q": 1},
              {"id": "n0", "cat": "count", "q": 1}]
    kw = {"category": lambda r: r["cat"], "item_id": lambda r: r["id"], "quality": lambda r: r["q"]}
    kept, removed = select_balanced(items, **kw)
    assert [r["id"] for r in removed] == ["t0"]  # the lowest-quality temporal item
    shuffled = items[::-1]
    kept2, removed2 = select_balanced(shuffled, **kw)
    assert sorted(r["id"] for r in kept) == sorted(r["id"] for r in kept2) and removed == removed2


def test_ties_are_broken_by_seeded_hash_not_order():
    items = [{"id": f"t{i}"} for i in range(10)] + [{"id": "x0"}, {"id": "y0"}, {"id": "y1"}]
    cat = {"t": "t", "x": "x", "y": "y"}
    kw = {"category": lambda r: cat[r["id"][0]], "item_id": lambda r: r["id"]}
    a = select_balanced(items, seed=1, **kw)[1]
    b = select_balanced(list(reversed(items)), seed=1, **kw)[1]
    assert {r["id"] for r in a} == {r["id"] for r in b} and len(a) == 4
