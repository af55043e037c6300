"""Evaluate a model on multiple-choice training-format samples (held-out splits, the synthetic world), and
summarise the records with Wilson intervals.

There is one prediction path: :func:`evaluate_world` writes the samples as the questions file of the
``world`` benchmark (:mod:`.benchmarks.world`) and asks them through :func:`.runner.run_eval` and the
predictor (``latentomni.inference.predictor.LatentOmniPredictor``), exactly as ``latentomni eval
--benchmark world`` would. The prompt is each sample's own user turn (what the model was trained on) and the
reply is read by the one shared extractor: an unparseable reply is wrong and counted as a parse failure,
never guessed.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

from ..data.questions import Predictor
from ..data.schema import TrainingSample, write_samples
from .runner import PREDICTIONS, RANK_GLOB, RESULTS, SETTINGS, LocalProcess, load_predictions, run_eval

QUESTIONS = "questions.jsonl"


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (well-behaved near 0, 1 and for small n)."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def evaluate_world(predictor: Predictor, samples: list[TrainingSample], world_dir: str | Path, out_dir: str | Path,
                   batch_size: int = 32, progress: bool = True) -> list[dict]:
    """One record per sample, in order: id, question_type, gold, predicted letter (or None), correct, reply,
    n_latent_blocks; a sample whose media could not be read has ``error`` instead of an answer.

    ``out_dir`` is an evaluation folder of its own (questions.jsonl, settings.json, predictions.jsonl,
    results.json), started afresh: the same name may hold the answers of a model trained again since.
    Batches are ``batch_size`` consecutive samples, as given, so that padding is the same on every rerun.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [out_dir / PREDICTIONS, out_dir / SETTINGS, out_dir / RESULTS, *out_dir.glob(RANK_GLOB)]:
        stale.unlink(missing_ok=True)
    # A question's id must be unique in its file (resume and scoring key on it), but the world's test.jsonl and
    # test_seen.jsonl number the questions of a clip alike: a repeated id is asked as "<id>#2", "<id>#3"...
    count: Counter[str] = Counter()
    asked = []
    for s in samples:
        count[s.id] += 1
        asked.append(s if count[s.id] == 1 else s.model_copy(update={"id": f"{s.id}#{count[s.id]}"}))
    write_samples(asked, out_dir / QUESTIONS)
    results = run_eval(predictor, "world", out_dir / QUESTIONS, world_dir, out_dir, batch_size=batch_size,
                       state=LocalProcess(), progress=progress)
    assert results is not None  # one process: the main one
    predictions = load_predictions(out_dir)
    missing = results["missing_media"]
    records = []
    for s, a in zip(samples, asked, strict=True):
        p = predictions.get(a.id)
        if a.id in missing:
            records.append(sample_record(s, None, "", 0, error=f"missing media: {', '.join(missing[a.id])}"))
        elif p is None or p.get("error"):
            records.append(sample_record(s, None, "", 0, error=str(p["error"]) if p else "not answered"))
        else:
            records.append(sample_record(s, p["pred"], p["reply"], p.get("n_latent_blocks", 0)))
    return records


def sample_record(s: TrainingSample, pred: str | None, reply: str, blocks: int, error: str | None = None) -> dict:
    """The record :func:`summarize` reads, for one sample (also the demo's blind guess)."""
    gold = s.answer.strip().upper()
    out = {"id": s.id, "question_type": s.question_type, "gold": gold, "pred": pred, "correct": pred == gold,
           "reply": reply, "n_latent_blocks": blocks}
    if error:
        out["error"] = error
    return out


def summarize(records: list[dict], chance: float = 0.25) -> dict:
    """Accuracy with a 95% Wilson interval, parse failures, media errors, and the same per question type.

    A record with an ``error`` (its media failed to decode) was never asked: it is counted as a media error,
    not as a parse failure, and left out of ``n`` and ``accuracy`` (over the answered samples);
    ``accuracy_overall`` counts it wrong, over every record.
    """

    def block(rows: list[dict]) -> dict:
        answered = [r for r in rows if not r.get("error")]
        n = len(answered)
        k = sum(r["correct"] for r in answered)
        lo, hi = wilson_interval(k, n)
        return {"n": n, "correct": k, "accuracy": k / n if n else 0.0, "ci95": [lo, hi],
                "above_chance": lo > chance, "parse_failure_rate": sum(r["pred"] is None for r in answered) / max(n, 1),
                "n_media_errors": len(rows) - n, "accuracy_overall": k / len(rows) if rows else 0.0,
                "mean_latent_blocks": sum(r["n_latent_blocks"] for r in answered) / max(n, 1)}

    by_type: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_type[r["question_type"] or "unknown"].append(r)
    return {**block(records), "by_type": {t: block(rows) for t, rows in sorted(by_type.items())}}
