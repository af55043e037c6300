"""LVOmniBench (Tao et al., 2026): long audio-video understanding, 1,014 questions on 275 videos of 10-90 min.

Official layout (Hugging Face ``KD-TAO/LVOmniBench``, read by the authors' ``OmniEval``)::

    data.json              a JSON list of question records
    videos/<video_id>.mp4

A record::

    {"video_id": "video_0", "question": "...", "options": ["A. ...", "B. ...", "C. ...", "D. ..."],
     "correct_option": "B", "question_type": "...", "audio_type": "...", "difficulty": "...",
     "video_category": "..."}

OmniEval reports overall accuracy and accuracy by ``question_type``, ``audio_type``, ``difficulty`` and
``video_category``; so do we. One difference, on purpose: OmniEval leaves unparseable replies out of the
denominator, we count them wrong (and report their rate), as for every benchmark here. ``--media-root`` is
the ``videos`` folder. Ids are the record's own id when it has one, else ``<video_id>#<n>``.

To score a checkpoint with OmniEval itself, give it ``latentomni.eval.omnieval.LatentOmniWrapper`` as its
model wrapper (``--wrapper-file`` that module's file, ``--class-name LatentOmniWrapper``); it asks the
questions as this adapter's runs do and hands OmniEval the parsed letter.
"""

from __future__ import annotations

from latentomni.data.questions import EvalItem
from latentomni.eval.annotations import Record
from latentomni.eval.benchmarks.base import Benchmark, Breakdown, Fields, Source

NAME = "lvomnibench"


def _items(rec: Record, src: Source) -> list[EvalItem]:
    """A record is one question."""
    video_id = rec.require_text("video_id", "video")
    return [
        src.item(
            rec,
            qid=rec.text("question_id", "qid", "id", "index") or src.qids(video_id),
            video=src.media(rec, [f"{video_id}.mp4"], field="video_id"),
            meta={
                "question_type": rec.text("question_type", "task_type"),
                "audio_type": rec.text("audio_type"),
                "difficulty": rec.text("difficulty"),
                "video_category": rec.text("video_category", "category"),
            },
        )
    ]


BENCHMARK = Benchmark(
    name=NAME,
    title="LVOmniBench",
    fields=Fields(answer=("correct_option", "answer")),
    records=_items,
    breakdowns=(
        Breakdown("question_type"),
        Breakdown("audio_type"),
        Breakdown("difficulty"),
        Breakdown("video_category"),
    ),
    aliases=("lv_omni_bench", "lvomni"),
)
