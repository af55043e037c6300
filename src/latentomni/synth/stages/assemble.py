"""Stage ``assemble`` (Sec. 3.3, last step): markers become latent parts; write the training JSONL.

Each ``[Segment n]`` of the audited trajectory becomes ``{"type": "latent", "segment": n, "start",
"end"}`` with segment n's window in the source media; the text between markers becomes text parts.
Every sample is validated with ``latentomni.data.schema`` before it is written, and the dataset card
is written next to the run's summaries.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from latentomni.data.schema import SampleFormatError, TrainingSample, parse_sample, write_samples
from latentomni.synth.card import write_card
from latentomni.synth.records import Item
from latentomni.synth.stages.base import PureStage, StageContext, check_invariant
from latentomni.synth.store import Drop, StageStore, StageSummary
from latentomni.synth.trajectory import to_parts


def user_text(item: Item) -> str:
    """The question as the model sees it: options one per line for multiple choice."""
    if item.qa.options:
        return item.qa.question + "\n" + "\n".join(item.qa.options)
    return item.qa.question


def sample_dict(item: Item, *, media: str, system_prompt: str | None) -> dict[str, Any]:
    """The training-sample JSON of one finished item (``latentomni.data.schema`` format)."""
    assert item.trajectory and item.segments and item.captions and item.judgement
    windows = {s.index: (s.start, s.end) for s in item.segments}
    captions = {c.index: c.final for c in item.captions}
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    messages.append({"role": "user", "content": [{"type": "video", "video": media},
                                                 {"type": "text", "text": user_text(item)}]})
    messages.append({"role": "assistant", "content": to_parts(item.trajectory.audited, windows, captions)})
    j = item.judgement
    return {
        "id": item.id,
        "messages": messages,
        "answer": item.qa.answer,
        "options": item.qa.options,
        "question_type": j.category.value,
        "modality": j.modality.value,
        "source": item.clip.source,
        "meta": {"clip_id": item.clip.id, "qa_format": item.qa.format, "reasoning_type": item.qa.reasoning_type.value,
                 "scores": {"context_utilization": j.context_utilization, "question_difficulty": j.question_difficulty,
                            "deductive_requirement": j.deductive_requirement, "total": j.total},
                 "segments": [[s.start, s.end] for s in item.segments], "audit_issues": item.trajectory.audit_issues},
    }


class AssembleStage(PureStage):
    name = "assemble"
    input_stage = "trajectory"

    def run(self, ctx: StageContext) -> StageSummary:
        cfg = ctx.cfg.stages.assemble
        output: Path = cfg.output
        # sorted by id: the input is in completion order, the dataset should not depend on timing
        items = sorted((Item.model_validate(r) for r in self.read_inputs(ctx)), key=lambda i: i.id)
        samples: list[TrainingSample] = []
        drops: list[Drop] = []
        for item in items:
            media = item.clip.media
            if cfg.media_paths == "relative":
                media = os.path.relpath(media, output.parent)
            try:
                samples.append(parse_sample(sample_dict(item, media=media, system_prompt=cfg.system_prompt),
                                            where=f"assemble:{item.id}"))
            except (SampleFormatError, KeyError) as e:
                drops.append(Drop(item.id, "schema_invalid", str(e)[:500]))
        tmp = output.with_name(output.name + ".tmp")
        write_samples(samples, tmp)
        os.replace(tmp, output)
        store = StageStore(ctx.run_dir, self.name)
        store.rewrite(({"id": s.id} for s in samples), drops)
        summary = StageSummary(self.name, len(items), len(samples), dict(Counter(d.reason for d in drops)), 0,
                               extra={"output": str(output)})
        check_invariant(summary)
        store.write_summary(summary)
        write_card(ctx.cfg, samples)
        return summary
