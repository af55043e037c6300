"""The synthetic world (``latentomni world`` / ``make demo``) as a benchmark: its held-out and validation splits.

The world's files are training-format samples (:class:`latentomni.data.schema.TrainingSample`), media paths
relative to the world's folder::

    <world>/test.jsonl        held-out question types on new clips
    <world>/test_seen.jsonl   the training question types on the same new clips
    <world>/val.jsonl         the training question types on clips of their own (choosing settings)
    <world>/clips/<id>.mp4    H.264 + AAC; the audio is the video's own track

``--annotations`` is one of these files (or any file of such samples, e.g. the demo's
``<out>/eval/held_out.jsonl``) and ``--media-root`` the world's folder. Each question is asked with the
sample's own user text, exactly what the demo's variants were trained on (no answer instruction is added:
the training targets end in ``\\boxed{}`` by themselves); the gold letter is the sample's ``answer``.
Accuracy is broken down per question type and into held-out versus seen types (the ``held_out_types`` of
the world's ``manifest.json`` when the media root has one, else the world's default).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from latentomni.data.questions import EvalItem
from latentomni.data.schema import TextPart, TrainingSample
from latentomni.eval.annotations import Record, check_unique_qids, load_records, media_file
from latentomni.eval.benchmarks.base import Benchmark, Breakdown

NAME = "world"
HELD_OUT, SEEN = "held-out types", "seen types"


def load(annotations: Path, media_root: Path, *, allow_absolute_media: bool = False) -> list[EvalItem]:
    held_out = held_out_types(media_root)
    items = [_item(rec, held_out, media_root, allow_absolute_media) for rec in load_records(annotations)]
    check_unique_qids((it.qid for it in items), Path(annotations))
    return items


def held_out_types(media_root: Path) -> frozenset[str]:
    """The question types the world held out of training: from its manifest when it is there."""
    from latentomni.data.world import DEFAULT_HELD_OUT  # here, not above: the package imports the renderer (PyAV)

    try:
        config = json.loads((Path(media_root) / "manifest.json").read_text(encoding="utf-8"))["config"]
        return frozenset(config["held_out_types"])
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset(DEFAULT_HELD_OUT)


def _item(rec: Record, held_out: frozenset[str], media_root: Path, allow_absolute: bool) -> EvalItem:
    try:
        s = TrainingSample.model_validate(dict(rec.data))
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(record)"
        raise rec.error(f"not a world sample: {where}: {err['msg']}; --benchmark world reads the world's "
                        "training-format JSONL (test.jsonl, test_seen.jsonl, val.jsonl)") from None
    rec = Record(rec.data, rec.path, f"{rec.where} ({s.id})")
    user = s.messages[0].content if s.messages and s.messages[0].role == "user" else []
    texts = [p for p in user if isinstance(p, TextPart)]
    # The predictor lays a prompt out as [video][audio] text (latentomni.data.questions.prompt_sample).
    media_first = [p.type for p in user] == [t for t in ("video", "audio") if t in {p.type for p in user}] + ["text"]
    if len(texts) != 1 or not media_first:
        raise rec.error("the user turn must be the media (video, then audio) followed by one text part")
    if not s.options:
        raise rec.error("a world question needs its lettered options")
    video = s.video
    if video is not None and (video.video_start is not None or video.video_end is not None):
        raise rec.error("a clip window (video_start/video_end) cannot be asked; the world asks whole clips")
    return EvalItem(
        benchmark=NAME,
        qid=s.id,
        question=texts[0].text,
        options=list(s.options),
        answer=s.answer.strip().upper(),
        video=media_file(rec, media_root, [video.video], field="video", allow_absolute=allow_absolute)
        if video is not None else None,
        audio=media_file(rec, media_root, [s.audio.audio], field="audio", allow_absolute=allow_absolute)
        if s.audio is not None else None,
        use_audio=True,
        meta={"question_type": s.question_type or "", "types": HELD_OUT if s.question_type in held_out else SEEN,
              "clip": str(s.meta.get("clip", ""))},
        prompt=texts[0].text,
    )


BENCHMARK = Benchmark(
    name=NAME,
    title="World",
    loader=load,
    breakdowns=(
        Breakdown("types", "Question types", (HELD_OUT, SEEN)),
        Breakdown("question_type", "Question type"),
    ),
    aliases=("synthetic-world", "demo-world"),
)
