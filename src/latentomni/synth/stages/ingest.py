"""Stage ``ingest``: read caption files, adapt each record (native / ASID / AVoCaDO), validate it.

A bad record never stops the run: it is dropped with its reason and ``file:line`` (the drop record's
id *is* the ``file:line``, since a broken record may have no usable id).
"""

from __future__ import annotations

from collections import Counter

from latentomni.synth.client import SynthError
from latentomni.synth.sources import Clip, RecordError, adapt, iter_source
from latentomni.synth.stages.base import PureStage, StageContext, check_invariant
from latentomni.synth.store import Drop, StageStore, StageSummary


def ingest_records(ctx: StageContext) -> tuple[list[Clip], list[Drop], int]:
    """All clips of all configured inputs, the drops, and the number of records read."""
    cfg = ctx.cfg.stages.ingest
    if not cfg.inputs:
        raise SynthError("stages.ingest.inputs is empty: list at least one caption file")
    clips: list[Clip] = []
    drops: list[Drop] = []
    seen: dict[str, str] = {}
    n = 0
    for inp in cfg.inputs:
        if not inp.path.is_file():
            raise SynthError(f"stages.ingest.inputs: caption file {inp.path} does not exist")
        media_root = inp.media_root or inp.path.parent
        for record in iter_source(inp.path):
            n += 1
            try:
                clip = adapt(record, inp.format, media_root)
                if clip.id in seen:
                    raise RecordError("duplicate_id", f"id {clip.id!r} already used at {seen[clip.id]}")
                if clip.duration < cfg.min_duration_s:
                    raise RecordError("too_short", f"{clip.duration:.2f} s < min_duration_s {cfg.min_duration_s}")
                if cfg.max_duration_s is not None and clip.duration > cfg.max_duration_s:
                    raise RecordError("too_long", f"{clip.duration:.2f} s > max_duration_s {cfg.max_duration_s}")
            except RecordError as e:
                drops.append(Drop(record.where, e.reason, f"{record.where}: {e.detail}"))
                continue
            seen[clip.id] = record.where
            clips.append(clip)
    return clips, drops, n


class IngestStage(PureStage):
    name = "ingest"
    input_stage = None

    def run(self, ctx: StageContext) -> StageSummary:
        clips, drops, n = ingest_records(ctx)
        store = StageStore(ctx.run_dir, self.name)
        store.rewrite((c.model_dump(mode="json") for c in clips), drops)
        summary = StageSummary(self.name, n, len(clips), dict(sorted(Counter(d.reason for d in drops).items())), 0)
        check_invariant(summary)
        store.write_summary(summary)
        return summary
