"""Held-out sample summaries count a sample whose media failed to decode as a media error, not as a wrong
answer or a parse failure (the same accounting as a benchmark's results.json)."""

import pytest

from latentomni.eval.samples import summarize


def _rec(sid: str, pred: str | None, gold: str = "B", error: str | None = None) -> dict:
    rec = {"id": sid, "question_type": "count", "gold": gold, "pred": pred, "correct": pred == gold,
           "reply": "" if error else f"\\boxed{{{pred}}}", "n_latent_blocks": 0 if error else 1}
    return rec | ({"error": error} if error else {})


def test_media_error_is_neither_a_parse_failure_nor_in_the_accuracy():
    records = [_rec("s1", "B"), _rec("s2", "C"), _rec("s3", None), _rec("s4", None, error="x.mp4: cannot open media")]
    out = summarize(records)
    assert (out["n"], out["correct"], out["n_media_errors"]) == (3, 1, 1)
    assert out["accuracy"] == pytest.approx(1 / 3) and out["accuracy_overall"] == pytest.approx(1 / 4)
    assert out["parse_failure_rate"] == pytest.approx(1 / 3)  # s3 only
    assert out["mean_latent_blocks"] == pytest.approx(1.0)
    assert out["by_type"]["count"]["n_media_errors"] == 1
