"""Video-MME (Fu et al., 2024) under the vision-only protocol: frames, no audio, no subtitles.

The paper compares with vision-centric latent-reasoning methods on Video-MME "without audio inputs", so
every item has ``use_audio=False``; the predictor must then feed frames only (no audio-in-video).

Official layouts, both read here:

* Hugging Face ``lmms-lab/Video-MME``: ``videomme/test-00000-of-00001.parquet`` (exported to JSON/JSONL,
  or read directly when ``pyarrow`` is installed) and ``videos_chunked_*.zip`` unpacking to ``data/``::

      {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
       "url": "...", "videoID": "fFjv93ACGo8", "question_id": "001-1", "task_type": "Counting Problem",
       "question": "...", "options": ["A. ...", "B. ...", "C. ...", "D. ..."], "answer": "C"}

* The authors' repository (``evaluation/output_test_template.json``): one entry per video with
  ``duration_category``, ``video_category``, ``video_subcategory`` and ``questions`` holding
  ``question_id``, ``task_type``, ``question``, ``choices`` and ``answer``.

``--media-root`` is the folder holding ``<videoID>.mp4`` (the unpacked ``data/``); ``<media_root>/data/``
and ``<video_id>.mp4`` are tried as well. Results are broken down by short/medium/long as in the paper's
Table 3, and by task type and domain. Each run also writes ``videomme_official.json`` beside results.json,
in the authors' template layout with the *parsed* letter as ``response`` (see ``eval.official``), for
their ``eval_your_results.py``.
"""

from __future__ import annotations

from pathlib import Path

from latentomni.data.questions import EvalItem
from latentomni.eval.annotations import (
    Record,
    check_unique_qids,
    load_records,
    media_file,
    normalise_answer,
    normalise_options,
)
from latentomni.eval.benchmarks.base import Benchmark, Breakdown
from latentomni.eval.official import videomme_official

NAME = "videomme"
DURATIONS = ("short", "medium", "long")
DOMAINS = (
    "Knowledge",
    "Film & Television",
    "Sports Competition",
    "Artistic Performance",
    "Life Record",
    "Multilingual",
)
TASK_TYPES = (
    "Temporal Perception",
    "Spatial Perception",
    "Attribute Perception",
    "Action Recognition",
    "Object Recognition",
    "OCR Problems",
    "Counting Problem",
    "Temporal Reasoning",
    "Spatial Reasoning",
    "Action Reasoning",
    "Object Reasoning",
    "Information Synopsis",
)


def load(annotations: Path, media_root: Path, *, allow_absolute_media: bool = False) -> list[EvalItem]:
    items: list[EvalItem] = []
    for rec in load_records(annotations):
        questions = rec.get("questions")
        if isinstance(questions, list):
            for k, q in enumerate(questions):
                items.append(_item(rec.child(q, f"questions[{k}]"), rec, media_root, allow_absolute_media))
        else:
            items.append(_item(rec, rec, media_root, allow_absolute_media))
    check_unique_qids((it.qid for it in items), Path(annotations))
    return items


def _item(q: Record, video: Record, media_root: Path, allow_absolute: bool) -> EvalItem:
    video_id = video.require_text("video_id", "videoID")
    youtube_id = video.text("videoID", "youtube_id")
    options = normalise_options(q.require("options", "choices"), q)
    names = [n for n in (youtube_id, video_id) if n]
    candidates = [f"{n}.mp4" for n in names] + [f"data/{n}.mp4" for n in names]
    return EvalItem(
        benchmark=NAME,
        qid=q.require_text("question_id", "qid"),
        question=q.require_text("question"),
        options=options,
        answer=normalise_answer(q.require("answer"), options, q),
        video=media_file(video, media_root, candidates, field="videoID", allow_absolute=allow_absolute),
        audio=None,
        use_audio=False,
        meta={
            "video_id": video_id,
            "duration": video.text("duration", "duration_category").lower(),
            "task_type": q.text("task_type"),
            "domain": video.text("domain", "video_category"),
            "sub_category": video.text("sub_category", "video_subcategory"),
        },
    )


BENCHMARK = Benchmark(
    name=NAME,
    title="VideoMME",
    loader=load,
    breakdowns=(
        Breakdown("duration", "Duration", DURATIONS),
        Breakdown("task_type", "Task type", TASK_TYPES),
        Breakdown("domain", "Domain", DOMAINS),
        Breakdown("sub_category", "Sub-category"),
    ),
    aliases=("video-mme", "video_mme", "videomme-v"),
    official=videomme_official,
)
