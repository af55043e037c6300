"""Stage ``score`` (Sec. 3.3, App. A.3): judge scores, category and modality; keep total >= 13."""

from __future__ import annotations

from typing import Any

from latentomni.synth import prompts
from latentomni.synth.balance import passes_threshold
from latentomni.synth.client import ItemDropped
from latentomni.synth.records import Item, Judgement
from latentomni.synth.replies import ScoreReply
from latentomni.synth.stages.base import Messages, PerItemStage, StageContext, Unit


class ScoreStage(PerItemStage):
    name = "score"
    input_stage = "qa"

    @staticmethod
    def messages(item: Item) -> Messages:
        return prompts.score_messages(item.clip, item.qa.question, item.qa.answer, item.qa.options)

    async def process(self, unit: Unit, ctx: StageContext) -> dict[str, Any]:
        item: Item = unit.payload
        assert ctx.client is not None
        reply = await ctx.client.ask(ctx.call("score.llm"), self.messages(item), ScoreReply)
        s = reply.scores
        min_total = ctx.cfg.stages.score.min_total
        if not passes_threshold((s.context_utilization, s.question_difficulty, s.deductive_requirement), min_total):
            raise ItemDropped("below_threshold", f"total score {reply.total} < {min_total} ({s.model_dump()})")
        item.judgement = Judgement(
            context_utilization=s.context_utilization, question_difficulty=s.question_difficulty,
            deductive_requirement=s.deductive_requirement, total=reply.total, category=reply.category,
            modality=reply.modality_dependency, rationale=reply.rationale,
        )
        return item.model_dump(mode="json")

    def preview(self, ctx: StageContext, inputs: list[dict[str, Any]]) -> list[tuple[str, Messages]]:
        return [("score.llm", self.messages(Item.model_validate(inputs[0])))] if inputs else []
