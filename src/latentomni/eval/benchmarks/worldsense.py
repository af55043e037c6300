"""WorldSense (Hong et al., 2025): real-world omni-modal understanding, 1,662 videos and 3,172 questions.

Official layout (Hugging Face ``honglyhly/WorldSense``; the ``worldsense_videos*.zip`` parts unpack to
``videos/``)::

    worldsense_qa.json     a JSON object keyed by video id
    videos/<video_id>.mp4

One entry holds the video's metadata and its questions under ``task0``, ``task1``, ...::

    "<video_id>": {"video_id": "...", "video_duration": "60s", "duration": "1-2min",
                   "domain": "Daily Life", "sub_category": "Cooking", "audio_class": ["Speech", "Music"],
                   "video_caption": "...",
                   "task0": {"question": "...", "candidates": ["A. ...", "B. ...", "C. ...", "D. ..."],
                             "answer": "B", "task_type": "Audio Recognition", "task_domain": "Recognition"}}

The table VLMEvalKit builds from this file is read too: ``WorldSense.tsv``, one row per question with the
columns ``index, video, video_path, duration, domain, candidates, sub_category, audio_class, task_domain,
task_type, subtitle_path, audio_path, video_caption, question, answer`` (lists written as their Python
repr, ``video_path`` as ``./videos/<video>.mp4``), or the same rows as JSON/JSONL; their ids are the
``index``. ``--media-root`` is the ``videos`` folder. ``audio_class`` is multi-label, so a question counts
in every audio class it lists, as in the paper's per-audio-class table. Results are broken down by task
type, task domain, domain, sub-category, audio class and duration. Ids are ``<video_id>#task<k>``.
"""

from __future__ import annotations

from pathlib import Path

from latentomni.data.questions import EvalItem
from latentomni.eval.annotations import Record, parse_seconds
from latentomni.eval.benchmarks.base import Benchmark, Breakdown, Fields, Source

NAME = "worldsense"
DURATIONS = ("<1min", "1-2min", "2-4min", "4-6min", "6-8min", ">8min")
_DURATION_EDGES_MIN = (1, 2, 4, 6, 8)
DOMAINS = (
    "Tech & Science",
    "Culture & Politics",
    "Daily Life",
    "Film & TV",
    "Performance",
    "Games",
    "Sports",
    "Music",
)
TASK_DOMAINS = ("Recognition", "Understanding", "Reasoning")
AUDIO_CLASSES = ("Speech", "Event", "Music")


def duration_bucket(bucket: object, seconds: object) -> str:
    """The official bucket label when given, else one computed from the clip length in seconds."""
    label = " ".join(str(bucket or "").split()).replace(" ", "")
    if label:
        for official in DURATIONS:
            if label.casefold() == official.casefold():
                return official
    s = parse_seconds(seconds)
    if s is None:
        s = parse_seconds(bucket)
    if s is None:
        return label or "unknown"
    for edge, name in zip(_DURATION_EDGES_MIN, DURATIONS, strict=False):
        if s < edge * 60:
            return name
    return DURATIONS[-1]


def _items(rec: Record, src: Source) -> list[EvalItem]:
    """The questions of a video entry (``task0``, ``task1``, ...), or the record itself when it is one row of
    VLMEvalKit's table."""
    tasks = [(k, v) for k, v in rec.data.items() if str(k).lower().startswith("task") and isinstance(v, dict)]
    if tasks:
        video_id = rec.text("video_id", "video") or rec.key or rec.require_text("video_id")
        return [_item(rec.child(task, str(key)), rec, video_id, f"{video_id}#{key}", src) for key, task in tasks]
    video_id = rec.text("video_id", "video") or Path(rec.require_text("video_path")).stem
    own_id = rec.text("qid", "question_id", "index")
    return [_item(rec, rec, video_id, own_id or src.qids(video_id), src)]


def _item(task: Record, video: Record, video_id: str, qid: str, src: Source) -> EvalItem:
    names = [f"{video_id}.mp4"]
    if video.text("video_path"):
        names.append(Path(video.text("video_path")).name)
    return src.item(
        task,
        qid=qid,
        video=src.media(video, names, field="video_id"),
        meta={
            "task_type": task.text("task_type"),
            "task_domain": task.text("task_domain"),
            "domain": video.text("domain"),
            "sub_category": video.text("sub_category"),
            "audio_class": video.text("audio_class"),
            "duration": duration_bucket(video.get("duration"), video.get("video_duration")),
        },
    )


BENCHMARK = Benchmark(
    name=NAME,
    title="WorldSense",
    fields=Fields(options=("candidates", "options", "choices"), answer=("answer", "correct_option")),
    records=_items,
    breakdowns=(
        Breakdown("task_type"),
        Breakdown("task_domain", order=TASK_DOMAINS),
        Breakdown("domain", order=DOMAINS),
        Breakdown("sub_category", "Sub-category"),
        Breakdown("audio_class", order=AUDIO_CLASSES),
        Breakdown("duration", order=DURATIONS),
    ),
    aliases=("world_sense", "world-sense"),
)
