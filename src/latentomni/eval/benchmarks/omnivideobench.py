"""OmniVideoBench (Li et al., 2025): 1,000 audio-visual questions on 628 videos of seconds to 30 minutes.

Official layout (Hugging Face ``NJU-LINK/OmniVideoBench``; the repository's ``data_example/`` shows it)::

    <annotations>.json     a JSON list, one entry per video
    videos/<video>.mp4

An entry nests the video's questions::

    {"video": "video_1", "video_type": "Vlog", "duration": "03:28",
     "questions": [{"question": "...", "question_type": "counting", "audio_type": "Speech",
                    "reasoning_steps": [...], "answer": "<option text>",
                    "options": ["A.0", "B.1", "C.2", "D.3"], "correct_option": "C"}]}

``duration`` is "MM:SS" (or "HH:MM:SS"). Options mix "A.x" and "A. x", and some records letter them
A, B, A, B: those source letters are dropped and the options lettered in order (``normalise_options``).
``correct_option`` is the gold letter and ``answer`` the gold text. Some records' two disagree; the letter
is kept (it is what the benchmark scores), and every such record is counted and listed under
``notes.answer_text_disagrees`` in results.json, with the option the text names, so that a user can check
them. The paper (and our Table 2) reports accuracy by audio type (Speech, Sound, Music) and by duration
bucket (0,1], (1,5], (5,10], (10,30] minutes, besides the 13 question types. A video over 30 minutes (or
with an unreadable duration) fits none of the paper's buckets: its questions form a ">30" (or "unknown")
group of their own and are listed under ``notes.outside_duration_buckets``. ``--media-root`` is the
``videos`` folder. Ids are ``<video>#<n>``, n counting the video's questions in file order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentomni.data.questions import EvalItem
from latentomni.eval.annotations import AnnotationError, Record, normalise_answer, parse_seconds
from latentomni.eval.benchmarks.base import Benchmark, Breakdown, Fields, Source, nested_questions

NAME = "omnivideobench"
AUDIO_TYPES = ("Speech", "Sound", "Music")
# Right-closed minute intervals, as in the paper's duration split.
DURATION_BUCKETS = ((1, "(0,1]"), (5, "(1,5]"), (10, "(5,10]"), (30, "(10,30]"))
OVER_30 = ">30"
DURATION_ORDER = (*(name for _, name in DURATION_BUCKETS), OVER_30)
# meta keys set only on records whose ``answer`` text names another option than ``correct_option``
TEXT_KEY, TEXT_OPTION_KEY = "answer_text", "answer_text_option"


def duration_bucket(value: object) -> str:
    """The (a,b] minute bucket of a "MM:SS" / seconds duration; ">30" past the paper's last bucket and
    "unknown" when unreadable (both listed in results.json's notes)."""
    seconds = parse_seconds(value)
    if seconds is None:
        return "unknown"
    for edge, name in DURATION_BUCKETS:
        if seconds <= edge * 60:
            return name
    return OVER_30


class _GoldLetter(Fields):
    """``correct_option`` is the gold letter (errors name it); a record without one is scored by its
    ``answer`` text."""

    def gold(self, q: Record, options: list[str]) -> str:
        if q.get("correct_option") is not None:
            return normalise_answer(q.get("correct_option"), options, q, "correct_option")
        return normalise_answer(q.require("correct_option", "answer"), options, q)


def _items(rec: Record, src: Source) -> list[EvalItem]:
    """The questions a video entry nests (ids counted per video), or the record itself when it is one."""
    video = rec.require_text("video", "video_id", "video_name")
    questions = nested_questions(rec)
    if questions is None:
        return [_item(rec, rec, video, rec.text("qid", "question_id", "id") or src.qids(video), src)]
    return [_item(q, rec, video, src.qids(video), src) for q in questions]


def _item(q: Record, video: Record, video_name: str, qid: str, src: Source) -> EvalItem:
    stem = Path(video_name).stem if video_name.lower().endswith(".mp4") else video_name
    item = src.item(
        q,
        qid=qid,
        video=src.media(video, [f"{stem}.mp4"], field="video"),
        meta={
            "question_type": q.text("question_type", "task_type"),
            "audio_type": q.text("audio_type"),
            "duration_bucket": duration_bucket(video.get("duration")),
            "duration": video.text("duration"),
            "video_type": video.text("video_type"),
        },
    )
    if q.get("correct_option") is not None and q.get("answer") is not None:
        text_option = _option_named_by(q, item.options)
        if text_option != item.answer:
            item.meta.update({TEXT_KEY: q.text("answer"), TEXT_OPTION_KEY: text_option or ""})
    return item


def _option_named_by(q: Record, options: list[str]) -> str | None:
    """The option letter the record's ``answer`` text names, or None when it names none of them."""
    try:
        return normalise_answer(q.get("answer"), options, q)
    except AnnotationError:
        return None


def notes(items: list[EvalItem]) -> dict[str, Any]:
    """results.json's ``notes``: records whose answer text and gold letter disagree (the letter is scored),
    and questions on videos outside the paper's duration buckets."""
    disagree = [
        {
            "qid": it.qid,
            "correct_option": it.answer,
            "answer_text": it.meta[TEXT_KEY],
            "answer_text_option": it.meta[TEXT_OPTION_KEY] or None,
        }
        for it in items
        if TEXT_KEY in it.meta
    ]
    outside = [
        {"qid": it.qid, "duration": it.meta.get("duration", ""), "group": it.meta["duration_bucket"]}
        for it in items
        if it.meta.get("duration_bucket") not in {name for _, name in DURATION_BUCKETS}
    ]
    return {
        "answer_text_disagrees": {
            "n": len(disagree),
            "about": "correct_option and the answer text name different options; correct_option is scored",
            "records": disagree,
        },
        "outside_duration_buckets": {
            "n": len(outside),
            "about": "videos over 30 minutes or of unreadable duration fit none of the paper's duration buckets",
            "records": outside,
        },
    }


BENCHMARK = Benchmark(
    name=NAME,
    title="OmniVideoBench",
    fields=_GoldLetter(),
    records=_items,
    breakdowns=(
        Breakdown("question_type"),
        Breakdown("audio_type", order=AUDIO_TYPES),
        Breakdown("duration_bucket", "Duration (min)", DURATION_ORDER),
        Breakdown("video_type"),
    ),
    aliases=("omni_video_bench", "omnivideo", "ovb"),
    notes_of=notes,
)
