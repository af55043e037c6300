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

from pathlib import Path

from latentomni.data.questions import EvalItem
from latentomni.eval.annotations import (
    QidAllocator,
    check_unique_qids,
    load_records,
    media_file,
    normalise_answer,
    normalise_options,
)
from latentomni.eval.benchmarks.base import Benchmark, Breakdown

NAME = "lvomnibench"


def load(annotations: Path, media_root: Path, *, allow_absolute_media: bool = False) -> list[EvalItem]:
    items = []
    qid = QidAllocator()
    for rec in load_records(annotations):
        video_id = rec.require_text("video_id", "video")
        options = normalise_options(rec.require("options", "choices"), rec)
        answer = normalise_answer(rec.require("correct_option", "answer"), options, rec, "correct_option")
        items.append(
            EvalItem(
                benchmark=NAME,
                qid=rec.text("question_id", "qid", "id", "index") or qid(video_id),
                question=rec.require_text("question"),
                options=options,
                answer=answer,
                video=media_file(
                    rec, media_root, [f"{video_id}.mp4"], field="video_id", allow_absolute=allow_absolute_media
                ),
                audio=None,
                use_audio=True,
                meta={
                    "question_type": rec.text("question_type", "task_type"),
                    "audio_type": rec.text("audio_type"),
                    "difficulty": rec.text("difficulty"),
                    "video_category": rec.text("video_category", "category"),
                },
            )
        )
    check_unique_qids((it.qid for it in items), Path(annotations))
    return items


BENCHMARK = Benchmark(
    name=NAME,
    title="LVOmniBench",
    loader=load,
    breakdowns=(
        Breakdown("question_type", "Question type"),
        Breakdown("audio_type", "Audio type"),
        Breakdown("difficulty", "Difficulty"),
        Breakdown("video_category", "Video category"),
    ),
    aliases=("lv_omni_bench", "lvomni"),
)
