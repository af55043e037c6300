"""Stage ``qa`` (Sec. 3.3, App. A.2): open-ended and multiple-choice QA pairs from each caption."""

from __future__ import annotations

from typing import Any

from latentomni.synth import prompts
from latentomni.synth.records import QA, Item
from latentomni.synth.replies import MCQReply, OpenQAReply, ReasoningType
from latentomni.synth.sources import Clip
from latentomni.synth.stages.base import ItemStage, Messages, StageContext, Unit

_ROTATION = list(ReasoningType)


class QAStage(ItemStage):
    name = "qa"
    input_stage = "ingest"

    def units(self, ctx: StageContext, inputs: list[dict[str, Any]]) -> list[Unit]:
        cfg = ctx.cfg.stages.qa
        units = []
        for record in inputs:
            clip = Clip.model_validate(record)
            for fmt in cfg.formats:
                for k in range(cfg.per_format):
                    units.append(Unit(f"{clip.id}:{fmt}{k}", (clip, fmt, k)))
        return units

    def messages(self, ctx: StageContext, unit: Unit) -> Messages:
        clip, fmt, k = unit.payload
        messages = prompts.open_qa_messages(clip) if fmt == "open" else prompts.mcq_messages(clip)
        n = ctx.cfg.stages.qa.per_format
        if n > 1:  # identical prompts would give identical (cached) answers: steer each variant elsewhere
            target = _ROTATION[k % len(_ROTATION)].value
            messages[-1]["content"] += f"\nThis is variant {k + 1} of {n}: target the reasoning type '{target}'."
        return messages

    async def process(self, unit: Unit, ctx: StageContext) -> dict[str, Any]:
        clip, fmt, _k = unit.payload
        assert ctx.client is not None
        call = ctx.call("qa.llm")
        if fmt == "open":
            open_reply = await ctx.client.ask(call, self.messages(ctx, unit), OpenQAReply)
            qa = QA(format="open", question=open_reply.question, answer=open_reply.answer,
                    reasoning_type=open_reply.reasoning_type)
        else:
            mcq = await ctx.client.ask(call, self.messages(ctx, unit), MCQReply)
            qa = QA(format="mcq", question=mcq.question, answer=mcq.answer.value, options=mcq.option_lines(),
                    reasoning_type=mcq.reasoning_type)
        return Item(id=unit.id, clip=clip, qa=qa).model_dump(mode="json")

    def preview(self, ctx: StageContext, inputs: list[dict[str, Any]]) -> list[tuple[str, Messages]]:
        units = self.units(ctx, inputs[:1])
        return [(f"qa.llm ({u.payload[1]})", self.messages(ctx, u)) for u in units[:2]]
