"""The stages of ``latentomni synth``, in pipeline order (Sec. 3.3, Fig. 3)."""

from __future__ import annotations

from latentomni.synth.stages.assemble import AssembleStage
from latentomni.synth.stages.balance import BalanceStage
from latentomni.synth.stages.base import ItemStage, PureStage, StageContext, Unit, run_item_stage
from latentomni.synth.stages.captions import CaptionsStage
from latentomni.synth.stages.ingest import IngestStage
from latentomni.synth.stages.qa import QAStage
from latentomni.synth.stages.score import ScoreStage
from latentomni.synth.stages.segment import SegmentStage
from latentomni.synth.stages.trajectory import TrajectoryStage

STAGES: dict[str, type[ItemStage] | type[PureStage]] = {
    "ingest": IngestStage,
    "qa": QAStage,
    "score": ScoreStage,
    "balance": BalanceStage,
    "segment": SegmentStage,
    "captions": CaptionsStage,
    "trajectory": TrajectoryStage,
    "assemble": AssembleStage,
}

__all__ = ["STAGES", "ItemStage", "PureStage", "StageContext", "Unit", "run_item_stage"]
