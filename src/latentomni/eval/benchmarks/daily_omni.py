"""Daily-Omni (Zhou et al., 2025): everyday audio-visual events, 30 s and 60 s clips.

Official layout (Hugging Face ``liarliar/Daily-Omni``: ``qa.json`` plus ``Videos.tar``)::

    qa.json                              a JSON list of records (some exports key them "Entry_N")
    Videos/<video_id>/<video_id>_video.mp4
    Videos/<video_id>/<video_id>_audio.wav   the clip's audio track, shipped separately

A record::

    {"Question": "...", "Choice": ["A. ...", "B. ...", "C. ...", "D. ..."], "Answer": "B",
     "video_id": "Ec_lQgZ9wlg", "Type": "Event Sequence", "video_category": "People & Blogs",
     "video_duration": "30s", "content_parent_category": "...", "content_fine_category": "..."}

``--media-root`` is the ``Videos`` folder. A flat ``<media_root>/<video_id>.mp4`` is accepted too, as some
mirrors re-pack the clips that way. The paper reports accuracy per ``Type``, per 30s/60s group and (on the
leaderboard) per video category. Records carry no question id, so ids are ``<video_id>#<n>``.
"""

from __future__ import annotations

from pathlib import Path

from latentomni.data.questions import EvalItem
from latentomni.eval.annotations import (
    QidAllocator,
    Record,
    check_unique_qids,
    load_records,
    media_file,
    normalise_answer,
    normalise_options,
    parse_seconds,
)
from latentomni.eval.benchmarks.base import Benchmark, Breakdown

NAME = "daily_omni"
TYPES = (
    "AV Event Alignment",
    "Comparative",
    "Context understanding",
    "Event Sequence",
    "Inference",
    "Reasoning",
)


def duration_group(value: object) -> str:
    """ "30s" / "60s" as the paper groups clips; a number of seconds goes to the nearer group."""
    seconds = parse_seconds(value)
    if seconds is None:
        return str(value or "unknown")
    return "30s" if seconds <= 45 else "60s"


def load(annotations: Path, media_root: Path, *, allow_absolute_media: bool = False) -> list[EvalItem]:
    records = load_records(annotations)
    qid = QidAllocator()
    items = [_item(rec, media_root, qid, allow_absolute_media) for rec in records]
    check_unique_qids((it.qid for it in items), Path(annotations))
    return items


def _item(rec: Record, media_root: Path, qid: QidAllocator, allow_absolute: bool) -> EvalItem:
    video_id = rec.require_text("video_id", "videoID", "video")
    options = normalise_options(rec.require("Choice", "choices", "options"), rec, "Choice")
    answer = normalise_answer(rec.require("Answer", "correct_option"), options, rec, "Answer")
    videos = [f"{video_id}/{video_id}_video.mp4", f"{video_id}.mp4"]
    video = media_file(rec, media_root, videos, field="video_id", allow_absolute=allow_absolute)
    wav = media_file(
        rec, media_root, [f"{video_id}/{video_id}_audio.wav"], field="video_id", allow_absolute=allow_absolute,
        required=False,
    )
    return EvalItem(
        benchmark=NAME,
        qid=rec.text("qid", "question_id", "id") or qid(video_id),
        question=rec.require_text("Question", "question"),
        options=options,
        answer=answer,
        video=video,
        audio=wav,
        use_audio=True,
        meta={
            "task_type": rec.text("Type", "task_type", "qa_type"),
            "duration": duration_group(rec.get("video_duration", "duration")),
            "video_category": rec.text("video_category"),
        },
    )


BENCHMARK = Benchmark(
    name=NAME,
    title="Daily-Omni",
    loader=load,
    breakdowns=(
        Breakdown("task_type", "Type", TYPES),
        Breakdown("duration", "Duration", ("30s", "60s")),
        Breakdown("video_category", "Video category"),
    ),
    aliases=("daily-omni", "dailyomni"),
)
