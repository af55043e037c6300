"""A multiple-choice question about media: what every benchmark adapter produces, what every predictor
consumes, and the prompt both sides render from it.

It sits in the data layer so that inference (which answers questions) and evaluation (which loads and scores
them) both reach it from below. The evaluation harness never touches the model: it turns a benchmark's
annotation file into ``EvalItem``s, hands them to a ``Predictor`` in batches and scores the replies.
``latentomni.inference.predictor.LatentOmniPredictor`` is the real predictor; tests use a scripted one.
Keeping this module free of model imports is what lets the harness (loading, resuming, scoring, comparing)
be tested in seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .schema import TrainingSample

# A meta value that names several labels (WorldSense tags a question with every audio class it hears)
# joins them with this separator; a breakdown counts such an item once in each of its groups.
LABEL_SEP = "|"

ANSWER_INSTRUCTION = (
    "Think about the question, then finish your reply with the letter of the correct option written in \\boxed{}."
)

@dataclass
class EvalItem:
    """One multiple-choice question, normalised to the same shape for every benchmark."""

    benchmark: str
    qid: str  # unique and stable within the benchmark: resume keys on it
    question: str
    options: list[str]  # normalised, "A. text"
    answer: str  # gold letter, upper case
    video: Path | None
    audio: Path | None  # a separate audio file when the benchmark ships one
    use_audio: bool  # False under VideoMME's vision-only protocol
    meta: dict[str, str] = field(default_factory=dict)  # breakdown keys (task_type, duration_bucket, ...)
    # The user text verbatim, for a benchmark whose file is already in the training format (the synthetic
    # world): its model was trained on exactly that text, so render_question must not rebuild it.
    prompt: str | None = None

    @property
    def letters(self) -> list[str]:
        """The option letters in order ("A", "B", ...)."""
        return [chr(ord("A") + i) for i in range(len(self.options))]

    def missing_media(self) -> list[Path]:
        """Media files the item names that are not on disk (the runner reports these instead of predicting)."""
        return [p for p in (self.video, self.audio) if p is not None and not p.is_file()]


@runtime_checkable
class Predictor(Protocol):
    """Anything that answers ``EvalItem``s. The harness only needs these two methods."""

    def settings(self) -> dict[str, Any]:
        """Everything that changes a reply (model, fps, frames, pixels, audio-in-video, system prompt,
        decoding, K, ...). Saved beside the results, and compared on resume so that one predictions file
        never mixes two configurations; it must therefore be JSON-serialisable and deterministic."""
        ...

    def predict(self, items: list[EvalItem]) -> list[dict[str, Any]]:
        """One dict per item, in order, at least ``{"reply": str}``; extra keys (e.g. ``n_latent_blocks``)
        are stored with the prediction. An item whose media cannot be decoded gets ``{"error": str}`` (one
        line, naming the file and the reason) instead of a reply: it is reported as a media error, not as a
        wrong answer, and asked again by the next run."""
        ...


def render_question(item: EvalItem) -> str:
    """The user text for ``item``: the question, the options one per line, and the answer instruction.

    Every benchmark goes through this one function so that a score difference between benchmarks is never
    a prompt difference; the instruction asks for ``\\boxed{}`` because that is what ``answer.extract_choice``
    reads first and what the training targets end with. An item that carries its own ``prompt`` is asked
    with that text as it stands.
    """
    if item.prompt is not None:
        return item.prompt
    lines = [item.question.strip(), *item.options, ANSWER_INSTRUCTION]
    return "\n".join(lines)


def prompt_sample(question: str, video: str | Path | None = None, audio: str | Path | None = None,
                  sample_id: str = "prompt") -> TrainingSample:
    """A prompt-only sample (its assistant turn is empty and never encoded)."""
    parts: list[dict] = []
    if video is not None:
        parts.append({"type": "video", "video": str(video)})
    if audio is not None:
        parts.append({"type": "audio", "audio": str(audio)})
    parts.append({"type": "text", "text": question})
    return TrainingSample.model_validate({
        "id": sample_id, "answer": "-",
        "messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": []}],
    })
