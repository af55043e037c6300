"""Fixtures for the evaluation harness: a scripted predictor and a small Daily-Omni set in the official format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


class ScriptedPredictor:
    """Replies from a qid -> reply table; records every predict() call so tests can check what was asked."""

    def __init__(self, replies: dict[str, str], settings: dict | None = None):
        self.replies = replies
        self._settings = settings if settings is not None else {"model": "scripted", "fps": 2.0, "K": 40}
        self.calls: list[list[str]] = []

    def settings(self) -> dict:
        return dict(self._settings)

    def predict(self, items):
        self.calls.append([it.qid for it in items])
        return [{"reply": self.replies.get(it.qid, "no idea"), "n_latent_blocks": 1} for it in items]

    @property
    def asked(self) -> list[str]:
        return [q for call in self.calls for q in call]


class FakeState:
    """The slice of accelerate.PartialState the runner uses, for one rank of a simulated sharded run."""

    def __init__(self, process_index: int, num_processes: int):
        self.process_index = process_index
        self.num_processes = num_processes
        self.is_main_process = self.is_local_main_process = process_index == 0

    def wait_for_everyone(self) -> None:
        pass


@pytest.fixture
def scripted():
    return ScriptedPredictor


@pytest.fixture
def fake_state():
    return FakeState


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# A Daily-Omni qa.json in the official shape, with the mess real files have: label casing that differs,
# "(C)" and "A." answers, an option list without letters answered by text, and one clip not on disk.
DAILY_OMNI = [
    {
        "Question": "What happens right after the bell?",
        "Choice": ["A. A door opens", "B. A dog barks", "C. A car passes", "D. Music starts"],
        "Answer": "B",
        "video_id": "vid1",
        "Type": "Event Sequence",
        "video_category": "Pets & Animals",
        "video_duration": "30s",
    },
    {
        "Question": "Who speaks first?",
        "Choice": ["A.The man", "B.The woman", "C.The child", "D.Nobody"],
        "Answer": "(C)",
        "video_id": "vid1",
        "Type": "event sequence",
        "video_category": "Pets & Animals",
        "video_duration": "30s",
    },
    {
        "Question": "Why does the crowd cheer?",
        "Choice": ["(A) A goal", "(B) A foul", "(C) A song", "(D) A fall"],
        "Answer": "A.",
        "video_id": "vid2",
        "Type": "Inference",
        "video_category": "Sports",
        "video_duration": "60s",
    },
    {
        "Question": "What is the weather like?",
        "Choice": ["Sunny", "Rainy", "Snowy", "Foggy"],
        "Answer": "rainy",
        "video_id": "vid2",
        "Type": "Inference",
        "video_category": "sports",
        "video_duration": "60S",
    },
    {
        "Question": "What instrument plays?",
        "Choice": ["A piano", "A violin", "A drum", "A flute"],
        "Answer": "C",
        "video_id": "vid3",
        "Type": "Reasoning",
        "video_category": "Music",
        "video_duration": "60s",
    },
    {
        "Question": "How many people wave?",
        "Choice": {"A": "One", "B": "Two", "C": "Three", "D": "Four"},
        "Answer": "D",
        "video_id": "vid4",
        "Type": "Reasoning",
        "video_category": "Music",
        "video_duration": "30s",
    },
]

# The scripted replies for DAILY_OMNI: right, wrong, unparseable, right by option text, (missing media), right.
DAILY_OMNI_REPLIES = {
    "vid1#1": "A dog appears. <Unified_Latent>[40 latents]</Unified_Latent> \\boxed{B}",
    "vid1#2": "I think the answer is A.",
    "vid2#1": "I cannot tell from the video.",
    "vid2#2": "Everything is wet and grey, it is rainy.",
    "vid3#1": "\\boxed{C}",
    "vid4#1": "Answer: D",
}


@pytest.fixture
def daily_omni(tmp_path):
    """(qa.json, Videos/) with vid3's clip missing."""
    qa = tmp_path / "qa.json"
    qa.write_text(json.dumps(DAILY_OMNI), encoding="utf-8")
    videos = tmp_path / "Videos"
    for vid in ("vid1", "vid2"):
        touch(videos / vid / f"{vid}_video.mp4")
        touch(videos / vid / f"{vid}_audio.wav")
    touch(videos / "vid4.mp4")  # the flat mirror layout
    return qa, videos


@pytest.fixture
def daily_omni_replies():
    return dict(DAILY_OMNI_REPLIES)
