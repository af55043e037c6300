"""The record that flows through the LLM stages: one QA item, filled in stage by stage.

Each stage reads the previous stage's JSONL and appends a section (``judgement`` after score,
``segments`` after segment, ...). Carrying the clip and every earlier section along means a stage
never joins files, and any output line is self-explanatory when inspected.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from latentomni.synth.replies import Category, Modality, ReasoningType
from latentomni.synth.sources import Clip

__all__ = ["QA", "Item", "Judgement", "Segment", "SegmentCaption", "Trajectory"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QA(_Section):
    format: Literal["open", "mcq"]
    question: str
    answer: str  # the option letter for mcq, the concise answer for open
    options: list[str] | None = None  # ["A. ...", "B. ...", "C. ...", "D. ..."]
    reasoning_type: ReasoningType


class Judgement(_Section):
    context_utilization: int
    question_difficulty: int
    deductive_requirement: int
    total: int
    category: Category
    modality: Modality
    rationale: str = ""


class Segment(_Section):
    index: int = Field(ge=1)  # the n of [Segment n]
    start: float
    end: float
    video: str  # clip with its audio track
    audio: str  # 16 kHz mono wav


class SegmentCaption(_Section):
    index: int
    video_caption: str
    audio_caption: str
    fused: str
    refined: str
    final: str  # refined caption minus unsupported sentences


class Trajectory(_Section):
    draft: str
    audited: str
    audit_issues: list[str] = Field(default_factory=list)


class Item(_Section):
    id: str
    clip: Clip
    qa: QA
    judgement: Judgement | None = None
    segments: list[Segment] | None = None
    captions: list[SegmentCaption] | None = None
    trajectory: Trajectory | None = None
