"""The training-sample format: one JSON object per line, shared by the data pipeline, the synthetic
world, the trainer and the evaluator.

A sample is a Qwen-Omni style conversation. The assistant turn is a list of parts; a ``latent`` part is
a latent block (``<Unified_Latent>`` + K latent slots + ``</Unified_Latent>``) that revisits the time
window ``[start, end)`` seconds of the question's media (Sec. 3.1, 3.3 of the paper)::

    {"id": "world-000017-q2",
     "messages": [
       {"role": "system", "content": [{"type": "text", "text": "You are ..."}]},
       {"role": "user", "content": [{"type": "video", "video": "clips/000017.mp4"},
                                    {"type": "text", "text": "Which colour ...?\\nA. red\\nB. blue ..."}]},
       {"role": "assistant", "content": [
          {"type": "text", "text": "The high tone matters, so look at when it sounds."},
          {"type": "latent", "segment": 2, "start": 2.0, "end": 4.0},
          {"type": "text", "text": "A blue square is on screen then. \\\\boxed{B}"}]}],
     "answer": "B", "options": ["A. red", "B. blue", "C. green", "D. yellow"],
     "question_type": "colour_at_sound", "modality": "AV-Strong", "source": "world"}

Media paths are resolved relative to the JSONL file's folder unless absolute. The latent window refers
to the user's video (and its audio track), or to the user's audio part when there is no video.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ROLES = ("system", "user", "assistant")


class _Strict(BaseModel):
    """A record of the format: a key it does not know is an error (a typo must not pass as a default)."""

    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"] = "text"
    text: str


class VideoPart(_Strict):
    """A video; ``video_start``/``video_end`` (seconds) optionally restrict it to a clip of the file."""

    type: Literal["video"] = "video"
    video: str
    video_start: float | None = Field(default=None, ge=0)
    video_end: float | None = Field(default=None, gt=0)


class AudioPart(_Strict):
    type: Literal["audio"] = "audio"
    audio: str


class LatentPart(_Strict):
    """A latent block citing ``[Segment n]``: the window ``[start, end)`` seconds of the question media."""

    type: Literal["latent"] = "latent"
    segment: int = Field(ge=1)
    start: float = Field(ge=0)
    end: float
    caption: str | None = None  # the segment's fused caption, kept for inspection only

    @model_validator(mode="after")
    def _window(self) -> LatentPart:
        if not self.end > self.start:
            raise ValueError(f"latent segment {self.segment}: end ({self.end}) must be > start ({self.start})")
        return self


Part = Annotated[TextPart | VideoPart | AudioPart | LatentPart, Field(discriminator="type")]


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: list[Part]

    @field_validator("content", mode="before")
    @classmethod
    def _string_content(cls, v: Any) -> Any:
        # Plain-string content is common in chat data; normalise it to one text part.
        return [{"type": "text", "text": v}] if isinstance(v, str) else v


class TrainingSample(_Strict):
    id: str = Field(min_length=1)
    messages: list[Message]
    answer: str = Field(min_length=1)
    options: list[str] | None = None
    question_type: str | None = None
    modality: str | None = None
    source: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _structure(self) -> TrainingSample:
        roles = [m.role for m in self.messages]
        if not roles or roles[-1] != "assistant" or roles.count("assistant") != 1:
            raise ValueError(f"messages must end with exactly one assistant turn, got roles {roles}")
        if "user" not in roles:
            raise ValueError("messages need a user turn")
        for m in self.messages:
            if m.role != "assistant" and any(isinstance(p, LatentPart) for p in m.content):
                raise ValueError(f"latent parts may only appear in the assistant turn, found one in '{m.role}'")
            if m.role != "user" and any(isinstance(p, VideoPart | AudioPart) for p in m.content):
                raise ValueError(f"media parts belong in the user turn, found one in '{m.role}'")
        user_parts = [p for m in self.messages if m.role == "user" for p in m.content]
        n_video = sum(isinstance(p, VideoPart) for p in user_parts)
        n_audio = sum(isinstance(p, AudioPart) for p in user_parts)
        if n_video > 1 or n_audio > 1:
            raise ValueError(f"at most one video and one audio per sample, got {n_video} and {n_audio}")
        if self.latent_blocks and n_video + n_audio == 0:
            raise ValueError("latent blocks cite media windows, but the user turn has no video or audio")
        if self.options is not None and len(self.options) < 2:
            raise ValueError("options, when given, need at least two entries")
        return self

    # -- convenient views -------------------------------------------------------------------------
    @property
    def assistant(self) -> Message:
        return self.messages[-1]

    @property
    def latent_blocks(self) -> list[LatentPart]:
        return [p for p in self.messages[-1].content if isinstance(p, LatentPart)]

    @property
    def video(self) -> VideoPart | None:
        return next((p for m in self.messages for p in m.content if isinstance(p, VideoPart)), None)

    @property
    def audio(self) -> AudioPart | None:
        return next((p for m in self.messages for p in m.content if isinstance(p, AudioPart)), None)


class SampleFormatError(ValueError):
    """A record of a training JSONL file that does not match the schema; says file and line."""


def parse_sample(obj: dict[str, Any], where: str = "<record>") -> TrainingSample:
    try:
        return TrainingSample.model_validate(obj)
    except ValidationError as e:
        sid = obj.get("id", "?") if isinstance(obj, dict) else "?"
        raise SampleFormatError(f"{where} (sample id {sid!r}): invalid training sample:\n{e}") from None


@dataclass
class JsonLine:
    """A non-blank line of a JSONL file: where it stands (``file:line``), and its decoded JSON or, when it
    does not decode, why not. Readers decide themselves whether a bad line is fatal."""

    where: str
    obj: Any
    error: str | None = None


def iter_json_lines(path: str | Path) -> Iterator[JsonLine]:
    """Every non-blank line of a JSONL file, decoded; bad JSON is reported in the line, not raised."""
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                line = JsonLine(f"{path}:{lineno}", json.loads(text))
            except json.JSONDecodeError as e:
                line = JsonLine(f"{path}:{lineno}", None, f"not valid JSON ({e.msg} at column {e.colno})")
            yield line


def iter_samples(path: str | Path) -> Iterator[TrainingSample]:
    """Yield validated samples of a JSONL file; a bad line raises with ``file:line`` in the message."""
    for line in iter_json_lines(path):
        if line.error is not None:
            raise SampleFormatError(f"{line.where}: {line.error}")
        if not isinstance(line.obj, dict):
            raise SampleFormatError(f"{line.where}: expected a JSON object, got {type(line.obj).__name__}")
        yield parse_sample(line.obj, line.where)


def load_samples(path: str | Path) -> list[TrainingSample]:
    return list(iter_samples(path))


def write_samples(samples: list[TrainingSample], path: str | Path, append: bool = False) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(s.model_dump_json(exclude_none=True) + "\n")


def resolve_media(path: str, base_dir: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(base_dir) / p
