"""Benchmarks' own output formats, written beside results.json so that a run can also be scored by the
benchmark authors' script.

An official scorer reads its answer field with its own extractor, and those extractors are crude: Video-MME's
``eval_your_results.py`` takes the first capital A-D anywhere in ``response``, so a reply such as "...A blue
square is on screen then. \\boxed{B}" scores as A. Every file written here therefore holds the letter our one
answer extractor (``answer.parse_choice``, the same reading ``scoring.judge`` makes for results.json) took
from the reply, never the raw reply; the raw replies stay in predictions.jsonl.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latentomni.data.answers import parse_choice
from latentomni.data.questions import EvalItem

VIDEOMME_FILE = "videomme_official.json"


def parsed_letter(item: EvalItem, prediction: Mapping[str, Any] | None) -> str:
    """The letter the stored reply commits to; "" when there is no reply (missing media, a media error, not
    asked yet) or it is unreadable."""
    if prediction is None or prediction.get("error"):
        return ""
    return parse_choice(str(prediction.get("reply", "")), item.options).letter or ""


def videomme_official(
    out_dir: Path, items: list[EvalItem], predictions: Mapping[str, Mapping[str, Any]]
) -> list[Path]:
    """``videomme_official.json`` in the layout of Video-MME's ``evaluation/output_test_template.json``.

    One entry per video, in file order::

        {"video_id": "001", "duration_category": "short", "video_category": "Knowledge",
         "video_subcategory": "Humanity & History", "missing": false,
         "questions": [{"question_id": "001-1", "task_type": "...", "question": "...",
                        "choices": ["A. ...", ...], "answer": "A", "response": "D"}]}

    ``response`` is the parsed letter, or "" for a question without a readable answer. Two differences from
    results.json follow from the authors' script, not from this file: it leaves a "" response out of the
    denominator (results.json counts an unreadable reply wrong), and it expects all 300 videos of each
    duration unless called with ``skip_missing=True``, which then skips the videos marked ``"missing": true``
    here (none of whose questions has an answer: media missing or undecodable, or not asked yet).
    """
    videos: dict[str, dict[str, Any]] = {}
    for item in items:
        video_id = item.meta["video_id"]  # the adapter's, "001"; not the YouTube id the file is named by
        entry = videos.setdefault(
            video_id,
            {
                "video_id": video_id,
                "duration_category": item.meta.get("duration", ""),
                "video_category": item.meta.get("domain", ""),
                "video_subcategory": item.meta.get("sub_category", ""),
                "missing": True,
                "questions": [],
            },
        )
        prediction = predictions.get(item.qid)
        answered = prediction is not None and not prediction.get("error")
        entry["missing"] = entry["missing"] and not answered
        entry["questions"].append(
            {
                "question_id": item.qid,
                "task_type": item.meta.get("task_type", ""),
                "question": item.question,
                "choices": list(item.options),
                "answer": item.answer,
                "response": parsed_letter(item, prediction),
            }
        )
    path = out_dir / VIDEOMME_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(list(videos.values()), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return [path]
