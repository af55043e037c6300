"""Evaluate a model on multiple-choice training-format samples (held-out splits, the synthetic world).

The prompt is the sample's own user turn (exactly what the model was trained on), decoding is the
latent-aware loop, and the reply is read by the one shared extractor (:func:`.answer.extract_choice`):
an unparseable reply is wrong and counted as a parse failure, never guessed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.collate import MediaSettings, SampleEncoder, batch_to, collate
from ..data.media import MediaError
from ..data.schema import TrainingSample
from ..model.generate import GenerationConfig, generate
from .answer import extract_choice


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (well-behaved near 0, 1 and for small n)."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@torch.no_grad()
def evaluate_samples(model, samples: list[TrainingSample], base_dir: str | Path, media: MediaSettings,
                     gen: GenerationConfig | None = None, batch_size: int = 32, desc: str | None = None,
                     progress: bool = True) -> list[dict]:
    """One record per sample: id, question_type, gold, predicted letter (or None), correct, reply."""
    was_training = model.training
    model.eval()
    enc = SampleEncoder.for_model(model, media, media_cache_size=256)
    gen = gen or GenerationConfig(max_new_tokens=160)
    pad = model.processor.tokenizer.pad_token_id
    records: list[dict] = []
    bar = tqdm(total=len(samples), desc=desc or "evaluating", disable=not progress, leave=False)
    for i in range(0, len(samples), batch_size):
        group = samples[i:i + batch_size]
        encoded, kept = [], []
        for s in group:
            try:
                encoded.append(enc.encode(s, base_dir, for_generation=True))
                kept.append(s)
            except MediaError as e:  # never asked: a media error in summarize, not a parse failure
                records.append(_record(s, None, "", 0, error=" ".join(str(e).split())))
        if encoded:
            batch = collate(encoded, pad, padding_side="left")
            batch = batch_to(batch, model.device)
            out = generate(model, batch, gen)
            for s, text, blocks in zip(kept, out.texts, out.num_blocks, strict=True):
                records.append(_record(s, extract_choice(text, s.options or []), text, blocks))
        bar.update(len(group))
    bar.close()
    model.train(was_training)
    return records


def _record(s: TrainingSample, pred: str | None, reply: str, blocks: int, error: str | None = None) -> dict:
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
