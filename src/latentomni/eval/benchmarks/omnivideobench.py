"""OmniVideoBench (Li et al., 2025): 1,000 audio-visual questions on 628 videos of seconds to 30 minutes.

Official layout (Hugging Face ``NJU-LINK/OmniVideoBench``; the repository's ``data_example/`` shows it)::

    <annotations>.json     a JSON list, one entry per video
    videos/<video>.mp4

An entry nests the video's questions::

    {"video": "video_1", "video_type": "Vlog", "duration": "03:28",
     "questions": [{"question": "...", "question_type": "counting", "audio_type": "Speech",
                    "reasoning_steps": [...], "answer": "<option text>",
                    "options": ["A.0", "B.1", "C.2", "D.3"], "correct_option": "C"}]}

``duration`` is "MM:SS" (or "HH:MM:SS"). Options mix "A.x" and "A. x"; ``correct_option`` is the gold
letter and ``answer`` the gold text, used only when the letter is absent. The paper (and our Table 2)
reports accuracy by audio type (Speech, Sound, Music) and by duration bucket (0,1], (1,5], (5,10],
(10,30] minutes, besides the 13 question types. ``--media-root`` is the ``videos`` folder. Ids are
``<video>#<n>``, n counting the video's questions in file order.
"""

from __future__ import annotations

from pathlib import Path

from latentomni.eval.annotations import (
    QidAllocator,
    Record,
    check_unique_qids,
    find_media,
    load_records,
    normalise_answer,
    normalise_options,
    parse_seconds,
)
from latentomni.eval.benchmarks.base import Benchmark, Breakdown
from latentomni.eval.items import EvalItem

NAME = "omnivideobench"
AUDIO_TYPES = ("Speech", "Sound", "Music")
# Right-closed minute intervals, as in the paper's duration split.
DURATION_BUCKETS = ((1, "(0,1]"), (5, "(1,5]"), (10, "(5,10]"), (30, "(10,30]"))
DURATION_ORDER = (*(name for _, name in DURATION_BUCKETS), ">30")


def duration_bucket(value: object) -> str:
    """The (a,b] minute bucket of a "MM:SS" / seconds duration; "unknown" when unreadable."""
    seconds = parse_seconds(value)
    if seconds is None:
        return "unknown"
    for edge, name in DURATION_BUCKETS:
        if seconds <= edge * 60:
            return name
    return ">30"


def load(annotations: Path, media_root: Path) -> list[EvalItem]:
    items: list[EvalItem] = []
    qid = QidAllocator()
    for rec in load_records(annotations):
        video = rec.require_text("video", "video_id", "video_name")
        questions = rec.get("questions")
        if isinstance(questions, list):
            for k, q in enumerate(questions):
                items.append(_item(rec.child(q, f"questions[{k}]"), rec, video, qid(video), media_root))
        else:
            items.append(_item(rec, rec, video, rec.text("qid", "question_id", "id") or qid(video), media_root))
    check_unique_qids((it.qid for it in items), Path(annotations))
    return items


def _item(q: Record, video: Record, video_name: str, qid: str, media_root: Path) -> EvalItem:
    options = normalise_options(q.require("options", "choices"), q)
    if q.get("correct_option") is not None:
        answer = normalise_answer(q.get("correct_option"), options, q, "correct_option")
    else:
        answer = normalise_answer(q.require("correct_option", "answer"), options, q)
    stem = Path(video_name).stem if video_name.lower().endswith(".mp4") else video_name
    return EvalItem(
        benchmark=NAME,
        qid=qid,
        question=q.require_text("question"),
        options=options,
        answer=answer,
        video=find_media([media_root / f"{stem}.mp4"]),
        audio=None,
        use_audio=True,
        meta={
            "question_type": q.text("question_type", "task_type"),
            "audio_type": q.text("audio_type"),
            "duration_bucket": duration_bucket(video.get("duration")),
            "video_type": video.text("video_type"),
        },
    )


BENCHMARK = Benchmark(
    name=NAME,
    title="OmniVideoBench",
    load=load,
    breakdowns=(
        Breakdown("question_type", "Question type"),
        Breakdown("audio_type", "Audio type", AUDIO_TYPES),
        Breakdown("duration_bucket", "Duration (min)", DURATION_ORDER),
        Breakdown("video_type", "Video type"),
    ),
    aliases=("omni_video_bench", "omnivideo", "ovb"),
)
