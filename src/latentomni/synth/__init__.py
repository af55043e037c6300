"""The data-construction pipeline of LatentOmni-Instruct (Sec. 3.3, App. A): ``latentomni synth``.

Caption records -> QA pairs -> judged, filtered, balanced -> media segments -> grounded segment
captions -> interleaved reasoning trajectories -> training samples with latent parts.

Module map::

    config.py      typed YAML config (endpoints, models, sampling, stage parameters)
    sources.py     caption records and the ASID / AVoCaDO adapters
    prompts.py     prompt texts of every LLM call
    replies.py     typed replies (pydantic), JSON schema for response_format, tolerant parser
    client.py      AsyncOpenAI access: round-robin, concurrency, retries, cache, repair turns
    cache.py       on-disk response cache (SQLite)
    store.py       append-only stage outputs, drops, summaries
    balance.py     score threshold and category balance (pure)
    media.py       segment boundaries (pure) and PyAV cutting
    text.py        sentence rules (fusion check, answer normalisation)
    trajectory.py  citation rules and [Segment n] -> latent parts (pure)
    card.py        dataset card
    stages/        one module per stage
    pipeline.py    run stages, dry run
    cli.py         the ``synth`` sub-commands

Its test machinery (a scripted chat server, a vLLM server with a tiny taught model) is in
:mod:`latentomni.testing`.

Names below are imported lazily so that ``import latentomni.synth.cli`` does not load openai or PyAV.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfigError": "config",
    "PipelineConfig": "config",
    "load_config": "config",
    "parse_config": "config",
    "STAGE_NAMES": "pipeline",
    "dry_run": "pipeline",
    "run_stages": "pipeline",
    "ItemDropped": "client",
    "LLMClient": "client",
    "SynthError": "client",
    "ResponseCache": "cache",
    "StageStore": "store",
    "balanced_targets": "balance",
    "is_balanced": "balance",
    "passes_threshold": "balance",
    "select_balanced": "balance",
    "cut_segments": "media",
    "segment_bounds": "media",
    "answers_match": "trajectory",
    "check_trajectory": "trajectory",
    "extract_boxed": "trajectory",
    "to_parts": "trajectory",
    "parse_reply": "replies",
    "strict_json_schema": "replies",
    "build_card": "card",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"latentomni.synth.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'latentomni.synth' has no attribute {name!r}")
