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

from latentomni.data.questions import EvalItem
from latentomni.eval.annotations import Record
from latentomni.eval.benchmarks.base import Benchmark, Breakdown, Source, nested_questions
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


def _items(rec: Record, src: Source) -> list[EvalItem]:
    """The questions of a video entry (the authors' template), or the record itself (the Hugging Face rows)."""
    questions = nested_questions(rec)
    return [_item(q, rec, src) for q in (questions if questions is not None else [rec])]


def _item(q: Record, video: Record, src: Source) -> EvalItem:
    video_id = video.require_text("video_id", "videoID")
    youtube_id = video.text("videoID", "youtube_id")
    names = [n for n in (youtube_id, video_id) if n]
    candidates = [f"{n}.mp4" for n in names] + [f"data/{n}.mp4" for n in names]
    return src.item(
        q,
        qid=q.require_text("question_id", "qid"),
        video=src.media(video, candidates, field="videoID"),
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
    records=_items,
    breakdowns=(
        Breakdown("duration", order=DURATIONS),
        Breakdown("task_type", order=TASK_TYPES),
        Breakdown("domain", order=DOMAINS),
        Breakdown("sub_category", "Sub-category"),
    ),
    aliases=("video-mme", "video_mme", "videomme-v"),
    official=videomme_official,
)
