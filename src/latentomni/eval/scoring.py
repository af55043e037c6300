"""From stored replies to the numbers a paper reports: accuracy, parse failures, per-group breakdowns.

Scoring re-reads the raw replies rather than trusting a letter stored at prediction time, so a run can be
re-scored after the answer extractor changes without running the model again.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from latentomni.data.answers import parse_choice
from latentomni.data.questions import LABEL_SEP, EvalItem
from latentomni.eval.benchmarks.base import Benchmark, Breakdown

UNKNOWN = "unknown"


def judge(item: EvalItem, reply: str) -> dict[str, Any]:
    """The parsed letter, the rule that read it and whether it is right, for one reply."""
    choice = parse_choice(reply, item.options)
    return {"pred": choice.letter, "parse_method": choice.method, "correct": choice.letter == item.answer}


def score(
    bench: Benchmark,
    items: list[EvalItem],
    predictions: Mapping[str, Mapping[str, Any]],
    missing_media: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """results.json for ``items`` (the selected questions, in order).

    Every selected question is in exactly one of four states, each counted on its own:

    - answered: a stored reply (``n``, also ``n_answered``); an unparseable one is a parse failure and wrong;
    - media error: its media could not be decoded (a stored row with ``error``), listed with that error;
    - missing media: a file it names is not on disk, listed with the paths that were looked for;
    - pending: not asked yet (an interrupted run).

    ``accuracy`` is over the answered questions (what a partial run can say), ``accuracy_overall`` over all
    selected ones with every unanswered question counted wrong (the benchmark's number). ``complete`` holds
    only when every selected question was answered. ``predictions`` maps qid to a stored prediction (at
    least ``reply``, or ``error``); predictions for qids outside ``items`` are ignored, so a run resumed
    with a smaller ``--limit`` scores only what it selects.
    """
    missing_media = dict(missing_media or {})
    scored: list[tuple[EvalItem, dict[str, Any]]] = []
    missing: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for item in items:
        pred = predictions.get(item.qid)
        if pred is not None and not pred.get("error"):
            scored.append((item, judge(item, str(pred.get("reply", "")))))
        elif item.qid in missing_media:
            missing[item.qid] = missing_media[item.qid]
        elif pred is not None:
            errors[item.qid] = str(pred["error"])
    n = len(scored)
    n_correct = sum(v["correct"] for _, v in scored)
    n_failed = sum(v["pred"] is None for _, v in scored)
    pending = len(items) - n - len(missing) - len(errors)
    return {
        "benchmark": bench.name,
        "title": bench.title,
        "accuracy": n_correct / n if n else None,
        "accuracy_overall": n_correct / len(items) if items else None,
        "n": n,
        "n_answered": n,
        "n_correct": n_correct,
        "n_parse_failures": n_failed,
        "parse_failure_rate": n_failed / n if n else None,
        "parse_methods": dict(Counter(str(v["parse_method"]) for _, v in scored)),
        "n_media_errors": len(errors),
        "media_errors": errors,
        "n_missing_media": len(missing),
        "missing_media": missing,
        "n_selected": len(items),
        "n_pending": pending,
        "complete": n == len(items),
        "breakdowns": {
            b.key: {"title": b.title, "groups": groups}
            for b in bench.breakdowns
            if (groups := breakdown(b, ((it, v["correct"]) for it, v in scored)))
        },
        "notes": bench.notes(items),  # what the benchmark lists about its file (e.g. OmniVideoBench's)
    }


def breakdown(spec: Breakdown, judged: Iterable[tuple[EvalItem, bool]]) -> dict[str, dict[str, Any]]:
    """Accuracy per group of ``spec.key``; empty when no item carries the key.

    Labels are grouped ignoring case and spacing ("Speech", "speech ", "SPEECH" are one group), shown with
    the spelling in ``spec.order`` when listed there, else with their most frequent spelling. A multi-label
    value counts the item in each of its groups.
    """
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    any_label = False
    for item, correct in judged:
        raw = item.meta.get(spec.key, "")
        labels = [" ".join(p.split()) for p in raw.split(LABEL_SEP) if p.strip()] or [UNKNOWN]
        any_label |= bool(raw.strip())
        for label in dict.fromkeys(labels):
            key = label.casefold()
            spellings[key][label] += 1
            counts[key][0] += 1
            counts[key][1] += int(correct)
    if not any_label:
        return {}
    official = {o.casefold(): o for o in spec.order}
    display = {k: official.get(k) or spellings[k].most_common(1)[0][0] for k in counts}
    rank = {o.casefold(): i for i, o in enumerate(spec.order)}
    keys = sorted(counts, key=lambda k: (k == UNKNOWN, rank.get(k, len(rank)), display[k].casefold()))
    return {
        display[k]: {"n": counts[k][0], "correct": counts[k][1], "accuracy": counts[k][1] / counts[k][0]} for k in keys
    }
