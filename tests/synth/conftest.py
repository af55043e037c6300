"""Shared fixtures of the synth tests: rendered media, caption records, a scripted LLM, configs.

The scripted LLM answers every kind of request the pipeline makes and misbehaves on purpose for
chosen items (malformed JSON, fences, prose, control characters, 429, 500, a slow reply, HTTP 400,
replies that break a rule). Items are recognised by a colour word (the clip) and a format token
(``qopen``/``qmcq``) that the scripted QA replies put into every question; everything later in the
pipeline quotes the question, so the tokens travel with the item.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from latentomni.data.render import render_av, tone
from latentomni.testing.chat_server import ScriptedReply, request_text, schema_name

COLOURS = ["crimson", "azure", "amber", "violet", "olive", "ivory", "teal", "coral", "indigo"]
NO_AUDIO = "olive"
CORRUPT = "ivory"
_COLOUR = re.compile(r"\b(" + "|".join(COLOURS) + r")\b")
_FORMAT = re.compile(r"\bq(open|mcq)\b")


# -- media and caption records ----------------------------------------------------------------------
def render_clip(path: Path, seconds: float, *, freq: float, audio: bool = True, seed: int = 0) -> Path:
    """A small H.264/AAC clip: 48x32 frames at 10 fps, a tone as sound track."""
    rng = np.random.default_rng(seed)
    frames = (rng.random((round(seconds * 10), 32, 48, 3)) * 255).astype(np.uint8)
    return render_av(path, frames, 10, tone(freq, seconds, 16000) if audio else None, sample_rate=16000)


def caption_record(colour: str, media: str, duration: float) -> dict[str, Any]:
    return {
        "id": f"clip-{colour}",
        "media": media,
        "duration": duration,
        "caption": f"A {colour} ball bounces twice on a wooden floor while a bell rings each time it lands.",
        "events": [
            {"start": 0.0, "end": 1.5, "modality": "visual", "text": f"A {colour} ball drops to the floor."},
            {"start": 1.0, "end": 1.4, "modality": "audio", "text": "A bell rings once."},
            {"start": 2.5, "end": duration, "modality": "visual", "text": f"The {colour} ball bounces again."},
        ],
    }


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nine 4 s clips (one without audio track, one corrupt) rendered once per session."""
    folder = tmp_path_factory.mktemp("media")
    for i, colour in enumerate(COLOURS):
        path = folder / f"{colour}.mp4"
        if colour == CORRUPT:  # an mp4 signature followed by noise
            path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(i).bytes(4096))
        else:
            render_clip(path, 4.0, freq=300 + 50 * i, audio=colour != NO_AUDIO, seed=i)
    return folder


def write_captions(path: Path, media_dir: Path, *, bad_records: bool = True) -> Path:
    lines = [json.dumps(caption_record(c, f"{c}.mp4", 4.0)) for c in COLOURS]
    if bad_records:
        lines += [
            "{not json",
            json.dumps(caption_record("crimson", "crimson.mp4", 4.0)),  # duplicate id
            json.dumps({**caption_record("missing", "missing.mp4", 4.0), "id": "clip-missing"}),
            json.dumps({**caption_record("teal", "teal.mp4", 4.0), "id": "clip-late",
                        "events": [{"start": 9.0, "end": 10.0, "modality": "audio", "text": "A door slams."}]}),
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the scripted LLM -------------------------------------------------------------------------------
CATEGORY = {  # clip colour + format -> judge category; drives the balance stage
    ("indigo", "mcq"): "Counting & Quantification",
    ("crimson", "open"): "Audio-Visual Joint Perception",
    ("azure", "open"): "Audio-Visual Joint Perception",
    ("teal", "open"): "Logical Relation Reasoning",
    ("teal", "mcq"): "Logical Relation Reasoning",
    ("coral", "open"): "Logical Relation Reasoning",
}
LOW_TOTAL = {("violet", "open")}  # below the threshold
BALANCE_VICTIM = ("ivory", "mcq")  # lowest total of the capped category


class ScriptedLLM:
    """The responder of the fake servers; counts requests per (kind, item) to script 'first time' faults."""

    def __init__(self, slow_s: float = 3.0) -> None:
        self.slow_s = slow_s
        self.seen: Counter[tuple[str, str, str]] = Counter()
        self.kinds: Counter[str] = Counter()
        self._lock = threading.Lock()

    # identification ---------------------------------------------------------------------------
    @staticmethod
    def kind(body: dict[str, Any]) -> str:
        name = schema_name(body)
        if name:
            return name
        system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
        parts = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]]
        if any(p.get("type") == "video_url" for p in parts):
            return "video_caption"
        if any(p.get("type") == "input_audio" for p in parts):
            return "audio_caption"
        for phrase, kind in (("You review question-answer pairs", "ScoreReply"),
                             ("You check generated captions", "GroundingReply"),
                             ("You audit reasoning", "AuditReply"),
                             ("multiple-choice question with four options", "MCQReply"),
                             ("one open-ended question", "OpenQAReply")):
            if phrase in system:
                return kind
        return "unknown"

    @staticmethod
    def item(body: dict[str, Any], kind: str) -> tuple[str, str]:
        text = "\n".join(request_text({"messages": [m]}) for m in body["messages"] if m["role"] != "system")
        colour = (_COLOUR.search(text) or [None, "?"])[1]
        if kind == "OpenQAReply":
            return colour, "open"
        if kind == "MCQReply":
            return colour, "mcq"
        fmt = (_FORMAT.search(text) or [None, "?"])[1]
        return colour, fmt

    @staticmethod
    def repairing(body: dict[str, Any]) -> bool:
        return "could not be used" in str(body["messages"][-1]["content"])

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        kind = self.kind(body)
        colour, fmt = self.item(body, kind)
        with self._lock:
            self.seen[(kind, colour, fmt)] += 1
            self.kinds[kind] += 1
            nth = self.seen[(kind, colour, fmt)]
        handler = getattr(self, "_" + kind, None)
        if handler is None:
            return ScriptedReply(status=500, error_message=f"scripted LLM cannot answer {kind}")
        return handler(body, colour, fmt, nth)

    # per kind -----------------------------------------------------------------------------------
    def _OpenQAReply(self, body, colour, fmt, nth):
        reply = {"question": f"In scene qopen, what makes the ringing right after the {colour} ball lands?",
                 "answer": "the bell", "reasoning_type": "sound_action_attribution"}
        text = json.dumps(reply)
        if colour == "crimson":
            return ScriptedReply(f"Sure! Here is the question you asked for:\n{text}\nHope it helps.")
        if colour == "azure" and not self.repairing(body):
            return ScriptedReply('{question: "missing quotes", "answer": }')
        if colour == "amber" and nth == 1:
            return ScriptedReply(status=429, error_message="slow down")
        if colour == "violet" and nth == 1:
            return ScriptedReply(text, delay_s=self.slow_s)
        return ScriptedReply(text)

    def _MCQReply(self, body, colour, fmt, nth):
        reply = {"question": f"In scene qmcq, which sound follows each landing of the {colour} ball?",
                 "options": {"A": "A ringing bell", "B": "A barking dog", "C": "A car horn", "D": "Rain on a roof"},
                 "answer": "A", "reasoning_type": "temporal"}
        if colour == "violet":  # never valid: duplicate options
            reply["options"]["B"] = "a ringing  bell"
        text = json.dumps(reply)
        if colour == "crimson":
            return ScriptedReply(f"```json\n{text}\n```")
        if colour == "azure":  # a raw tab and newline inside a string, as constrained decoders sometimes emit
            return ScriptedReply(text.replace("which sound", "which\tsound").replace("A car horn", "A car\nhorn"))
        if colour == "amber" and nth == 1:
            return ScriptedReply(status=500, error_message="engine overloaded")
        return ScriptedReply(text)

    def _ScoreReply(self, body, colour, fmt, nth):
        key = (colour, fmt)
        scores = [5, 5, 4]
        if key in LOW_TOTAL:
            scores = [3, 3, 3]
        elif key == BALANCE_VICTIM:
            scores = [5, 4, 4]
        reply = {"scores": dict(zip(["context_utilization", "question_difficulty", "deductive_requirement"],
                                    scores, strict=True)),
                 "category": CATEGORY.get(key, "Temporal Sequence Understanding"),
                 "modality_dependency": "AV-Strong" if fmt == "open" else "Audio-Strong",
                 "rationale": "Needs the landing and the bell together."}
        return ScriptedReply(json.dumps(reply))

    def _video_caption(self, body, colour, fmt, nth):
        if (colour, fmt) == ("azure", "open"):
            return ScriptedReply(status=400, error_message="This model does not support video input")
        caption = f"A {colour} ball falls onto a wooden floor. It bounces once near the wall. Scene q{fmt}."
        if colour == "indigo":  # what a faulty proxy in front of a plain-text captioner delivered
            return ScriptedReply(f"Sure! Here is the result:\n```\n{caption}\n```\nHope it helps!")
        if (colour, fmt) == ("teal", "mcq") and not self.repairing(body):
            return ScriptedReply("I'm sorry, I cannot describe this video.")
        return ScriptedReply(caption)

    def _audio_caption(self, body, colour, fmt, nth):
        caption = f"A bell rings once as the {colour} ball lands. The room is otherwise quiet."
        if colour == "indigo":
            return ScriptedReply(f"Certainly. Here's the audio caption.\n{caption}")
        return ScriptedReply(caption)

    def _FusionReply(self, body, colour, fmt, nth):
        complete = (f"A {colour} ball falls onto a wooden floor. A bell rings once as the {colour} ball lands. "
                    f"It bounces once near the wall. The room is otherwise quiet. Scene q{fmt}.")
        lossy = f"A {colour} ball falls and a bell rings. Scene q{fmt}."
        if (colour, fmt) == ("amber", "mcq") or ((colour, fmt) == ("crimson", "mcq") and not self.repairing(body)):
            return ScriptedReply(json.dumps({"narrative": lossy}))
        return ScriptedReply(json.dumps({"narrative": complete}))

    def _RefineReply(self, body, colour, fmt, nth):
        return ScriptedReply(json.dumps({"caption": f"A {colour} ball falls onto a wooden floor and a bell rings as "
                                                    f"it lands. It bounces once near the wall. Scene q{fmt}."}))

    def _GroundingReply(self, body, colour, fmt, nth):
        if (colour, fmt) == ("azure", "mcq"):
            return ScriptedReply(json.dumps({"unsupported_sentences": ["It bounces once near the wall."],
                                             "verdict": "hallucinated"}))
        if (colour, fmt) == ("crimson", "open"):
            return ScriptedReply(json.dumps({"unsupported_sentences": ["It bounces once near the wall."],
                                             "verdict": "partially_grounded"}))
        return ScriptedReply(json.dumps({"unsupported_sentences": [], "verdict": "grounded"}))

    @staticmethod
    def _answer(body) -> str:
        text = request_text(body)
        return re.search(r"^Answer: (.+)$", text, re.MULTILINE).group(1).strip()

    def _TrajectoryReply(self, body, colour, fmt, nth):
        answer = self._answer(body)
        good = (f"The question hinges on what is heard at the moment of impact. [Segment 1] The {colour} ball "
                "meets the floor and a bell rings at that instant. [Segment 2] The second landing brings the "
                f"same ring, so the sound belongs to the landings. \\boxed{{{answer}}}")
        key = (colour, fmt)
        if key == ("teal", "open"):
            good = good.replace(f"\\boxed{{{answer}}}", "\\boxed{a car horn}")
        elif key == ("coral", "mcq"):
            good = good.replace("[Segment 2]", "[Segment 2] Listening again [Segment 1] and again [Segment 2] "
                                               "and once more [Segment 1]")
        elif key == ("crimson", "open") and not self.repairing(body):
            good = good.replace("[Segment 2]", "[Segments 1-2]")
        if key == ("indigo", "open"):  # one backslash inside JSON: '\b' decodes to a backspace
            return ScriptedReply('{"trajectory": "' + good.replace("\\boxed", "\\b" + "oxed") + '"}')
        return ScriptedReply(json.dumps({"trajectory": good}))

    def _AuditReply(self, body, colour, fmt, nth):
        draft = request_text(body).split("Reasoning to audit:\n", 1)[1]
        key = (colour, fmt)
        if key == ("coral", "open"):
            return ScriptedReply(json.dumps({"consistent": False, "trajectory": draft,
                                             "issues": ["the second landing is not observed"]}))
        if key in (("indigo", "mcq"), ("teal", "mcq")):
            fixed = draft.replace("[Segment 2]", "[Segment 1]", 1)
            return ScriptedReply(json.dumps({"consistent": True, "trajectory": fixed,
                                             "issues": ["first citation pointed at the wrong segment"]}))
        return ScriptedReply(json.dumps({"consistent": True, "trajectory": draft, "issues": []}))


def write_config(path: Path, *, run_dir: Path, captions: Path, media_dir: Path, urls: list[str],
                 judge_urls: list[str] | None = None, timeout_s: float = 2.0, concurrency: int = 8) -> Path:
    """A pipeline config against the fake servers: fast retries, short timeouts."""
    def call(endpoint: str, model: str) -> dict[str, Any]:
        return {"endpoint": endpoint, "model": model, "sampling": {"temperature": 0.0, "max_tokens": 512}}

    cfg: dict[str, Any] = {
        "run_dir": str(run_dir),
        "endpoints": {
            "text": {"base_urls": urls, "response_format": "json_schema", "timeout_s": timeout_s,
                     "max_concurrency": concurrency},
            "judge": {"base_urls": judge_urls or urls, "response_format": "json_object", "timeout_s": timeout_s,
                      "max_concurrency": concurrency},
            "captioner": {"base_urls": urls, "response_format": "none", "timeout_s": timeout_s,
                          "max_concurrency": concurrency},
        },
        "retry": {"max_attempts": 4, "base_delay_s": 0.01, "max_delay_s": 0.05, "invalid_reply_attempts": 2},
        "stages": {
            "ingest": {"inputs": [{"path": str(captions), "format": "native", "media_root": str(media_dir)}]},
            "qa": {"llm": call("text", "qwen3-text"), "concurrency": concurrency},
            "score": {"llm": call("judge", "glm-judge"), "min_total": 13, "concurrency": concurrency},
            "balance": {"max_ratio": 3.0},
            "segment": {"mode": "fixed", "length_s": 2.0, "min_length_s": 1.0, "workers": 2},
            "captions": {"video_llm": call("captioner", "omni-captioner"),
                         "audio_llm": call("captioner", "omni-captioner"),
                         "fusion_llm": call("text", "glm-text"), "refine_llm": call("text", "glm-text"),
                         "filter_llm": call("judge", "glm-judge"), "concurrency": concurrency},
            "trajectory": {"llm": call("text", "glm-text"), "audit_llm": call("judge", "gemini-audit"),
                           "concurrency": concurrency},
            "assemble": {"output": "train.jsonl"},
        },
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
