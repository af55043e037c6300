"""Stage ``trajectory`` (Sec. 3.3, App. A.6): interleaved reasoning citing segments, audited, rule-checked.

The generator writes a chain with ``[Segment n]`` markers ending in ``\\boxed{...}``; a reply that
breaks the rules gets a repair turn. A second model then audits it (corrects citation numbers, drops
redundant branches, or declares it inconsistent). The audited text must pass the same rules again:
boxed answer equal to the ground truth, 1-3 citations of segments that exist, nothing after the box.
"""

from __future__ import annotations

from typing import Any

from latentomni.synth import prompts
from latentomni.synth.client import ItemDropped
from latentomni.synth.records import Item, Trajectory
from latentomni.synth.replies import AuditReply, TrajectoryReply
from latentomni.synth.stages.base import Messages, PerItemStage, StageContext, Unit
from latentomni.synth.trajectory import check_trajectory


class TrajectoryStage(PerItemStage):
    name = "trajectory"
    input_stage = "captions"

    @staticmethod
    def segments(item: Item) -> list[tuple[int, float, float, str]]:
        assert item.segments is not None and item.captions is not None
        text = {c.index: c.final for c in item.captions}
        return [(s.index, s.start, s.end, text[s.index]) for s in item.segments]

    def rules(self, ctx: StageContext, item: Item):
        cfg = ctx.cfg.stages.trajectory
        n = len(item.segments or [])

        def check(text: str):
            return check_trajectory(text, n_segments=n, answer=item.qa.answer, options=item.qa.options,
                                    min_citations=cfg.min_citations, max_citations=cfg.max_citations,
                                    banned_phrases=cfg.banned_phrases)

        return check

    def draft_messages(self, item: Item) -> Messages:
        return prompts.trajectory_messages(item.qa.question, item.qa.answer, item.qa.options, self.segments(item))

    async def process(self, unit: Unit, ctx: StageContext) -> dict[str, Any]:
        item: Item = unit.payload
        assert ctx.client is not None
        rules = self.rules(ctx, item)

        def draft_check(reply: TrajectoryReply) -> tuple[str, str] | None:
            problem = rules(reply.trajectory)
            return None if problem is None else (problem.reason, problem.detail)

        draft = await ctx.client.ask(ctx.call("trajectory.llm"), self.draft_messages(item), TrajectoryReply,
                                     check=draft_check)
        audit_msgs = prompts.audit_messages(item.qa.question, item.qa.answer, item.qa.options, self.segments(item),
                                            draft.trajectory)
        audit = await ctx.client.ask(ctx.call("trajectory.audit_llm"), audit_msgs, AuditReply)
        if not audit.consistent:
            raise ItemDropped("audit_inconsistent", "; ".join(audit.issues) or "the auditor rejected the trajectory")
        text = audit.trajectory.strip() or draft.trajectory
        problem = rules(text)
        if problem is not None:
            raise ItemDropped(problem.reason, f"after audit: {problem.detail}")
        item.trajectory = Trajectory(draft=draft.trajectory, audited=text, audit_issues=audit.issues)
        return item.model_dump(mode="json")

    def preview(self, ctx: StageContext, inputs: list[dict[str, Any]]) -> list[tuple[str, Messages]]:
        if not inputs:
            return []
        item = Item.model_validate(inputs[0])
        audit = prompts.audit_messages(item.qa.question, item.qa.answer, item.qa.options, self.segments(item),
                                       "<draft trajectory>")
        return [("trajectory.llm", self.draft_messages(item)), ("trajectory.audit_llm", audit)]
