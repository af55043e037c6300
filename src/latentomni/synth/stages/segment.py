"""Stage ``segment`` (Sec. 3.3): cut each media file into windows -- a clip with audio and a 16 kHz wav.

Units are QA items, but the cutting happens once per media file: items of the same clip wait on the
same cut. Cutting is CPU work, so it runs in worker threads (``segment.workers`` at a time) and the
event loop stays free.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any

from latentomni.synth.client import ItemDropped
from latentomni.synth.media import MediaError, SegmentFiles, cut_segments, segment_bounds
from latentomni.synth.records import Item, Segment
from latentomni.synth.sources import Clip
from latentomni.synth.stages.base import PerItemStage, StageContext, Unit


def clip_dirname(clip_id: str) -> str:
    """A folder name for a clip id that may hold any characters (ids come from source datasets)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", clip_id)[:80]
    return f"{safe}-{hashlib.sha1(clip_id.encode()).hexdigest()[:8]}"


def bounds_for(ctx: StageContext, clip: Clip) -> list[tuple[float, float]]:
    cfg = ctx.cfg.stages.segment
    times = [t for e in clip.events for t in (e.start, e.end)]
    return segment_bounds(clip.duration, mode=cfg.mode, length_s=cfg.length_s, min_length_s=cfg.min_length_s,
                          max_length_s=cfg.max_length_s, max_segments=cfg.max_segments, event_times=times)


class SegmentStage(PerItemStage):
    name = "segment"
    input_stage = "balance"
    uses_llm = False

    def __init__(self) -> None:
        self._cuts: dict[str, asyncio.Task[list[SegmentFiles]]] = {}
        self._slots: asyncio.Semaphore | None = None

    def concurrency(self, ctx: StageContext) -> int:
        return max(4, ctx.cfg.stages.segment.workers * 2)

    async def _cut(self, ctx: StageContext, clip: Clip) -> list[SegmentFiles]:
        cfg = ctx.cfg.stages.segment
        if self._slots is None:
            self._slots = asyncio.Semaphore(cfg.workers)
        async with self._slots:
            return await asyncio.to_thread(
                cut_segments, clip.media, bounds_for(ctx, clip), ctx.run_dir / "segments" / clip_dirname(clip.id),
                audio_rate=cfg.audio_rate, max_side=cfg.video_max_side,
            )

    async def process(self, unit: Unit, ctx: StageContext) -> dict[str, Any]:
        item: Item = unit.payload
        if item.clip.id not in self._cuts:
            self._cuts[item.clip.id] = asyncio.ensure_future(self._cut(ctx, item.clip))
        try:
            files = await asyncio.shield(self._cuts[item.clip.id])
        except MediaError as e:
            raise ItemDropped(e.reason, e.detail) from None
        item.segments = [Segment(index=f.index, start=f.start, end=f.end, video=f.video, audio=f.audio)
                         for f in files]
        return item.model_dump(mode="json")
