"""The dataset card: what the assembled dataset holds and where the rest went.

Written as JSON (for tools) and Markdown (for people) into the run folder. Counts per category,
modality dependency, QA format and source come from the samples; the per-stage in/out/dropped counts
and drop reasons come from the stage summaries, so the card and the summaries cannot disagree.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from latentomni.data.schema import TrainingSample
from latentomni.synth.config import PipelineConfig
from latentomni.synth.replies import Category, Modality
from latentomni.synth.store import StageStore

__all__ = ["DROP_REASONS", "STAGE_ORDER", "build_card", "card_markdown", "write_card"]

STAGE_ORDER = ["ingest", "qa", "score", "balance", "segment", "captions", "trajectory", "assemble"]

# Every drop-reason code the pipeline records, with what it means (shown in the Markdown card).
DROP_REASONS = {
    "invalid_json": "the input line is not valid JSON",
    "invalid_record": "the record lacks or breaks a required field",
    "media_missing": "the media file does not exist",
    "no_timed_events": "the record has no timestamped audio/visual events",
    "duplicate_id": "an earlier record has the same id",
    "too_short": "media shorter than ingest.min_duration_s",
    "too_long": "media longer than ingest.max_duration_s",
    "request_rejected": "the server refused the request (HTTP 4xx, e.g. media sent to a text-only model)",
    "request_failed": "429/5xx/timeouts on every retry (rerun with --retry-failed request_failed)",
    "invalid_reply": "the reply never parsed or validated, repair turns included",
    "reply_truncated": "the reply hit max_tokens before it was valid",
    "chatter_reply": "a plain-text reply held conversation (a refusal, two fences) besides the text, repairs included",
    "below_threshold": "judge scores sum below score.min_total",
    "category_balance": "down-sampled so adjacent categories stay within balance.max_ratio",
    "corrupt_media": "the media file cannot be opened or decoded",
    "no_audio_track": "the media file has no (or an empty) audio stream",
    "no_video_track": "the media file has no video stream",
    "empty_segment": "a segment window holds no video frame (duration longer than the media)",
    "fusion_lost_sentences": "the fused caption kept not every sentence of the two captions",
    "hallucinated_caption": "a segment caption is mostly unsupported by the source caption",
    "audit_inconsistent": "the auditing model rejected the trajectory",
    "answer_mismatch": "the boxed answer disagrees with the ground truth",
    "citation_count": "fewer or more [Segment n] citations than allowed",
    "citation_out_of_range": "a citation names a segment that does not exist",
    "malformed_citation": "a segment reference not written as [Segment n]",
    "no_boxed_answer": "the trajectory does not end in \\boxed{...}",
    "text_after_answer": "text follows the boxed answer",
    "mentions_source_text": "the trajectory mentions captions/descriptions instead of perceiving",
    "schema_invalid": "the assembled sample fails latentomni.data.schema",
}


def build_card(cfg: PipelineConfig, samples: list[TrainingSample]) -> dict[str, Any]:
    by_category = Counter(s.question_type for s in samples)
    by_modality = Counter(s.modality for s in samples)
    stages = []
    for name in STAGE_ORDER:
        summary = StageStore(cfg.run_dir, name).read_summary()
        if summary is None:
            continue
        traffic = summary.get("traffic") or {}
        stages.append({
            "stage": name, "in": summary["inputs"], "out": summary["outputs"], "dropped": summary["dropped_total"],
            "pending": summary["pending"], "drop_reasons": summary["dropped"],
            "requests_sent": traffic.get("requests_sent", 0), "cache_hits": traffic.get("cache_hits", 0),
            "prompt_tokens": traffic.get("prompt_tokens", 0), "completion_tokens": traffic.get("completion_tokens", 0),
        })
    return {
        "samples": len(samples),
        "output": str(cfg.stages.assemble.output),
        "by_category": {c.value: by_category.get(c.value, 0) for c in Category},
        "by_modality": {m.value: by_modality.get(m.value, 0) for m in Modality},
        "by_format": dict(Counter(s.meta.get("qa_format", "?") for s in samples)),
        "by_source": dict(Counter(s.source or "?" for s in samples)),
        "latent_blocks_per_sample": dict(sorted(Counter(len(s.latent_blocks) for s in samples).items())),
        "stages": stages,
        "models": {name: call.model for name, call in cfg.llm_calls().items()},
        "thresholds": {"min_total_score": cfg.stages.score.min_total,
                       "max_adjacent_category_ratio": cfg.stages.balance.max_ratio},
    }


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def card_markdown(card: dict[str, Any]) -> str:
    drops = [[s["stage"], reason, n, DROP_REASONS.get(reason, "")]
             for s in card["stages"] for reason, n in s["drop_reasons"].items()]
    parts = [
        "# LatentOmni synthetic dataset card",
        f"{card['samples']} training samples in `{card['output']}`.",
        "## Samples per category",
        _table(["category", "samples"], [[k, v] for k, v in card["by_category"].items()]),
        "## Samples per modality dependency",
        _table(["modality", "samples"], [[k, v] for k, v in card["by_modality"].items()]),
        "## Samples per QA format and source",
        _table(["format", "samples"], [[k, v] for k, v in card["by_format"].items()]),
        _table(["source", "samples"], [[k, v] for k, v in card["by_source"].items()]),
        "## Stages",
        _table(["stage", "in", "out", "dropped", "pending", "requests sent", "cache hits"],
               [[s["stage"], s["in"], s["out"], s["dropped"], s["pending"], s["requests_sent"], s["cache_hits"]]
                for s in card["stages"]]),
        "## Drop reasons",
        _table(["stage", "reason", "count", "meaning"], drops or [["-", "-", 0, ""]]),
        "## Models",
        _table(["call", "model"], [[k, v] for k, v in card["models"].items()]),
    ]
    return "\n\n".join(parts) + "\n"


def write_card(cfg: PipelineConfig, samples: list[TrainingSample]) -> dict[str, Any]:
    card = build_card(cfg, samples)
    run_dir = Path(cfg.run_dir)
    (run_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (run_dir / "card.md").write_text(card_markdown(card), encoding="utf-8")
    return card
