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

from latentomni.data.questions import EvalItem
from latentomni.eval.annotations import Record, parse_seconds
from latentomni.eval.benchmarks.base import Benchmark, Breakdown, Fields, Source

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


def _items(rec: Record, src: Source) -> list[EvalItem]:
    """A record is one question; its clip's audio track is the separate ``_audio.wav`` when shipped."""
    video_id = rec.require_text("video_id", "videoID", "video")
    videos = [f"{video_id}/{video_id}_video.mp4", f"{video_id}.mp4"]
    video = src.media(rec, videos, field="video_id")
    wav = src.media(rec, [f"{video_id}/{video_id}_audio.wav"], field="video_id", required=False)
    meta = {
        "task_type": rec.text("Type", "task_type", "qa_type"),
        "duration": duration_group(rec.get("video_duration", "duration")),
        "video_category": rec.text("video_category"),
    }
    own_id = rec.text("qid", "question_id", "id")
    return [src.item(rec, qid=own_id or src.qids(video_id), video=video, audio=wav, meta=meta)]


BENCHMARK = Benchmark(
    name=NAME,
    title="Daily-Omni",
    fields=Fields(
        question=("Question", "question"), options=("Choice", "choices", "options"), answer=("Answer", "correct_option")
    ),
    records=_items,
    breakdowns=(
        Breakdown("task_type", "Type", TYPES),
        Breakdown("duration", order=("30s", "60s")),
        Breakdown("video_category"),
    ),
    aliases=("daily-omni", "dailyomni"),
)
