"""Run stages of the pipeline, one or all, for real or as a dry run.

``run_stages`` is what the CLI calls. Each LLM stage gets its own :class:`LLMClient` (so its summary
counts its own traffic) over one shared response cache in ``<run_dir>/cache.sqlite``.

A dry run sends nothing and writes nothing: it renders the first prompt of each requested stage. A
stage whose input does not exist yet is previewed on an illustrative item built from the first
ingested clip, so ``synth all --dry-run`` shows every prompt before any money is spent.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from latentomni.synth.cache import ResponseCache
from latentomni.synth.client import LLMClient, SynthError
from latentomni.synth.config import PipelineConfig
from latentomni.synth.records import QA, Item, Judgement, Segment, SegmentCaption
from latentomni.synth.replies import Category, Modality, ReasoningType
from latentomni.synth.sources import Clip
from latentomni.synth.stages import STAGES, ItemStage, PureStage, StageContext, run_item_stage
from latentomni.synth.stages.ingest import ingest_records
from latentomni.synth.stages.segment import bounds_for, clip_dirname
from latentomni.synth.store import StageStore, StageSummary

__all__ = ["STAGE_NAMES", "dry_run", "run_stages"]

STAGE_NAMES = list(STAGES)


async def _run(cfg: PipelineConfig, names: Sequence[str], *, retry_failed: Sequence[str], progress: bool,
               log: TextIO | None) -> list[StageSummary]:
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    cache = ResponseCache(cfg.run_dir / "cache.sqlite")
    summaries = []
    try:
        for name in names:
            stage = STAGES[name]()
            ctx = StageContext(cfg, cache=cache, show_progress=progress)
            if isinstance(stage, PureStage):
                summary = stage.run(ctx)
            elif not stage.uses_llm:
                summary = await run_item_stage(stage, ctx, retry_failed=retry_failed)
            else:
                async with LLMClient(cfg.endpoints, cache, cfg.retry) as client:
                    ctx.client = client
                    summary = await run_item_stage(stage, ctx, retry_failed=retry_failed)
            summaries.append(summary)
            if log is not None:
                log.write(format_summary(summary) + "\n")
                log.flush()
            if not summary.complete:
                raise SynthError(f"stage '{name}' left {summary.pending} item(s) pending; rerun to finish it")
    finally:
        cache.close()
    return summaries


def run_stages(cfg: PipelineConfig, names: Sequence[str], *, retry_failed: Sequence[str] = (),
               progress: bool = True, log: TextIO | None = None) -> list[StageSummary]:
    """Run the named stages in order; each resumes where an earlier run stopped. A one-line summary
    per stage goes to ``log`` if given."""
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise SynthError(f"unknown stage(s) {unknown}; stages are {STAGE_NAMES}")
    return asyncio.run(_run(cfg, names, retry_failed=retry_failed, progress=progress, log=log))


def format_summary(s: StageSummary) -> str:
    """One line per stage for the terminal (the full summary is in summaries/<stage>.json)."""
    drops = ", ".join(f"{k}={v}" for k, v in s.dropped.items()) or "none"
    line = f"[{s.stage}] in={s.inputs} out={s.outputs} dropped={s.dropped_total} ({drops}) pending={s.pending}"
    t = s.traffic
    if t:
        line += (f" | sent={t['requests_sent']} cached={t['cache_hits']} retries={t['retries']}"
                 f" tokens={t['prompt_tokens']}+{t['completion_tokens']} req/s={s.requests_per_s}")
    return line


# -- dry run ----------------------------------------------------------------------------------------
def _placeholder_item(ctx: StageContext, clip: Clip, upto: str) -> dict[str, Any]:
    """An illustrative record shaped like the input of the stage after ``upto`` (never written)."""
    qa = QA(format="mcq", question="<question from the qa stage>", answer="A",
            options=["A. <option>", "B. <option>", "C. <option>", "D. <option>"],
            reasoning_type=ReasoningType.TEMPORAL)
    item = Item(id=f"{clip.id}:mcq0", clip=clip, qa=qa)
    order = STAGE_NAMES
    if order.index(upto) >= order.index("score"):
        item.judgement = Judgement(context_utilization=5, question_difficulty=4, deductive_requirement=4, total=13,
                                   category=Category.TEMPORAL_SEQUENCE, modality=Modality.AV_STRONG)
    if order.index(upto) >= order.index("segment"):
        folder = ctx.run_dir / "segments" / clip_dirname(clip.id)
        item.segments = [Segment(index=i + 1, start=a, end=b, video=str(folder / f"seg_{i + 1:02d}.mp4"),
                                 audio=str(folder / f"seg_{i + 1:02d}.wav"))
                         for i, (a, b) in enumerate(bounds_for(ctx, clip))]
    if order.index(upto) >= order.index("captions"):
        item.captions = [SegmentCaption(index=s.index, video_caption="", audio_caption="", fused="", refined="",
                                        final=f"<grounded caption of segment {s.index}>") for s in item.segments or []]
    return item.model_dump(mode="json")


def _abbreviate(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Media payloads shortened to their size, so a preview stays readable."""
    out = copy.deepcopy(messages)
    for msg in out:
        if not isinstance(msg.get("content"), list):
            continue
        for part in msg["content"]:
            for key, field in (("video_url", "url"), ("input_audio", "data")):
                inner = part.get(key)
                if isinstance(inner, dict) and len(str(inner.get(field, ""))) > 120:
                    value = inner[field]
                    head = value.split(",", 1)[0] if value.startswith("data:") else "base64"
                    inner[field] = f"{head},<{len(value)} characters>"
    return out


def _render(messages: list[dict[str, Any]]) -> str:
    lines = []
    for msg in _abbreviate(messages):
        content = msg["content"]
        if isinstance(content, list):
            content = "\n".join(p["text"] if p.get("type") == "text" else json.dumps(p) for p in content)
        lines.append(f"--- {msg['role']} ---\n{content}")
    return "\n".join(lines)


def dry_run(cfg: PipelineConfig, names: Sequence[str], out: TextIO | None = None) -> None:
    """Print the first rendered prompt of each named stage (to stdout by default); sends and writes nothing."""
    out = sys.stdout if out is None else out
    ctx = StageContext(cfg, show_progress=False)
    clips: list[Clip] | None = None
    for name in names:
        stage = STAGES[name]()
        out.write(f"===== {name} =====\n")
        if name == "ingest":
            clips, drops, n = ingest_records(ctx)
            out.write(f"{n} records read: {len(clips)} usable, {len(drops)} would be dropped\n")
            for d in drops[:5]:
                out.write(f"  drop {d.reason}: {d.detail}\n")
            continue
        assert stage.input_stage is not None
        store = StageStore(cfg.run_dir, stage.input_stage)
        inputs = store.outputs()[:1] if store.out_path.exists() else []
        if not inputs and isinstance(stage, ItemStage):
            if clips is None:
                clips, _drops, _n = ingest_records(ctx)
            if not clips:
                out.write("(no usable input record to preview)\n")
                continue
            inputs = [clips[0].model_dump(mode="json")] if name == "qa" else [
                _placeholder_item(ctx, clips[0], stage.input_stage)]
        previews = stage.preview(ctx, inputs) if inputs else []
        if not previews:
            out.write("(no LLM prompt in this stage)\n")
        for call, messages in previews:
            endpoint = cfg.endpoints[cfg.llm_calls()[call.split(" ")[0]].endpoint]
            out.write(f"## {call} -> model {cfg.llm_calls()[call.split(' ')[0]].model} at {endpoint.base_urls[0]} "
                      f"(response_format: {endpoint.response_format})\n{_render(messages)}\n")
