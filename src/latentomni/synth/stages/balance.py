"""Stage ``balance`` (Sec. 3.3): cap categories so that adjacent ones differ by at most 3x."""

from __future__ import annotations

from collections import Counter

from latentomni.synth.balance import balanced_targets, select_balanced
from latentomni.synth.records import Item
from latentomni.synth.stages.base import PureStage, StageContext, check_invariant
from latentomni.synth.store import Drop, StageStore, StageSummary


class BalanceStage(PureStage):
    name = "balance"
    input_stage = "score"

    def run(self, ctx: StageContext) -> StageSummary:
        cfg = ctx.cfg.stages.balance
        items = [Item.model_validate(r) for r in self.read_inputs(ctx)]

        def category(item: Item) -> str:
            assert item.judgement is not None
            return item.judgement.category.value

        counts = Counter(category(i) for i in items)
        targets = balanced_targets(counts, cfg.max_ratio)
        kept, removed = select_balanced(items, category=category, item_id=lambda i: i.id,
                                        quality=lambda i: i.judgement.total if i.judgement else 0,
                                        max_ratio=cfg.max_ratio, seed=cfg.seed)
        order = {item.id: n for n, item in enumerate(items)}  # keep the input order in the output
        kept.sort(key=lambda i: order[i.id])
        drops = [Drop(i.id, "category_balance",
                      f"'{category(i)}' capped at {targets[category(i)]} of {counts[category(i)]}") for i in removed]
        store = StageStore(ctx.run_dir, self.name)
        store.rewrite((i.model_dump(mode="json") for i in kept), drops)
        summary = StageSummary(self.name, len(items), len(kept), {"category_balance": len(drops)} if drops else {}, 0,
                               extra={"counts_before": dict(counts), "counts_after": targets})
        check_invariant(summary)
        store.write_summary(summary)
        return summary
