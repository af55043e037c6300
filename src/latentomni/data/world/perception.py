"""Perception samples: dense, single-clip targets that teach a tiny base model to see, hear and tell time
before it is asked to reason across modalities.

Four families, none with latent blocks:

* captions — the whole clip segment by segment, or one segment, with its window in seconds;
* probes — one modality at a time: what is on screen / heard at a time, first or last, how often, when;
* motion — which way the shape moves in a segment (the only place training describes motion);
* option copying — text only: which letter holds a given text, and what an option says.

Probes are answered either in plain text or as a 4-option question with a boxed letter, so the base model
learns both the vocabulary and the answer format the reasoning data uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentomni.data.schema import TrainingSample
from latentomni.data.world.questions import LETTERS, N_OPTIONS, answer_text, answer_vocabulary
from latentomni.data.world.scene import (
    NUMBER_WORDS,
    TONES,
    Clip,
    Segment,
    dense_line,
    seconds,
)


def probe_time(seg: Segment) -> float:
    """The segment's midpoint rounded down to a half second: at least 0.5 s inside it, and short to write."""
    return seg.start + 0.5 * (round(seg.duration * 2) // 2)


def _probes(rng: np.random.Generator, clip: Clip) -> list[tuple[str, str, str, str, str]]:
    """(kind, attribute asked about, modality, question, answer text) of every probe that applies to ``clip``;
    the time-indexed ones ask about one random segment."""
    segs = clip.segments
    seg = segs[int(rng.integers(len(segs)))]
    t = seconds(probe_time(seg))
    first, last = segs[0], segs[-1]
    out = [
        ("colour_at_time", "colour", "Video-Strong", f"What colour is on screen at {t} s?",
         answer_text("colour", seg.visual.colour)),
        ("shape_at_time", "shape", "Video-Strong", f"Which shape is on screen at {t} s?",
         answer_text("shape", seg.visual.shape)),
        ("count_at_time", "count", "Video-Strong", f"How many shapes are on screen at {t} s?",
         answer_text("count", seg.visual.count)),
        ("sound_at_time", "sound", "Audio-Strong", f"What sound is heard at {t} s?", answer_text("sound", seg.sound)),
        ("colour_first", "colour", "Video-Strong", "What colour is the shape at the start?",
         answer_text("colour", first.visual.colour)),
        ("shape_last", "shape", "Video-Strong", "What shape is on screen at the end?",
         answer_text("shape", last.visual.shape)),
        ("sound_first", "sound", "Audio-Strong", "What sound is heard first?", answer_text("sound", first.sound)),
        ("sound_last", "sound", "Audio-Strong", "What sound is heard last?", answer_text("sound", last.sound)),
        ("motion_in_segment", "motion", "Video-Strong", f"Which way does the shape move in segment {seg.index}?",
         answer_text("motion", seg.visual.motion)),
    ]
    tone_name = tuple(TONES)[int(rng.integers(len(TONES)))]
    times = sum(s.sound == tone_name for s in segs)
    out.append(("count_sound", "count", "Audio-Strong", f"How many times does the {tone_name} play?",
                NUMBER_WORDS[times]))
    out.append(("count_segments", "count", "AV", "How many segments does the clip have?", NUMBER_WORDS[len(segs)]))
    once = [s for s in segs if sum(o.sound == s.sound for o in segs) == 1 and s.sound != "silence"]
    if once:
        s = once[int(rng.integers(len(once)))]
        out.append(("when_sound", "time", "Audio-Strong", f"When is {answer_text('sound', s.sound)} heard?",
                    f"From {seconds(s.start)} to {seconds(s.end)} s."))
    unique = [s for s in segs if sum(o.visual.colour == s.visual.colour for o in segs) == 1]
    if unique:
        s = unique[int(rng.integers(len(unique)))]
        out.append(("when_colour", "time", "Video-Strong", f"When is a {s.visual.colour} shape on screen?",
                    f"From {seconds(s.start)} to {seconds(s.end)} s."))
    return out


def world_sample(sid: str, media: str | None, question: str, answer_parts: str, answer: str, kind: str,
                 modality: str, options: list[str] | None = None, meta: dict[str, Any] | None = None
                 ) -> TrainingSample:
    """One open or multiple-choice sample of the world (no latent blocks), typed ``perception/<kind>``: the
    builder every family here uses, public so that experiments (``experiments/grounding``) build theirs alike."""
    user: list[dict[str, Any]] = [] if media is None else [{"type": "video", "video": media}]
    user.append({"type": "text", "text": question})
    return TrainingSample.model_validate({
        "id": sid,
        "messages": [{"role": "user", "content": user},
                     {"role": "assistant", "content": [{"type": "text", "text": answer_parts}]}],
        "answer": answer, "options": options, "question_type": f"perception/{kind}", "modality": modality,
        "source": "world", "meta": meta or {},
    })


def multiple_choice(rng: np.random.Generator, attribute: str, correct: str,
                    also: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """Four lettered options holding ``correct`` and ``also`` (the rest from the attribute's vocabulary), and
    the correct one's letter."""
    vocab = [v for v in answer_vocabulary(attribute) if v != correct and v not in also]
    picked = [vocab[i] for i in rng.choice(len(vocab), N_OPTIONS - 1 - len(also), replace=False)]
    shown = [correct, *also, *picked]
    shown = [shown[i] for i in rng.permutation(N_OPTIONS)]
    return [f"{LETTERS[i]}. {o}" for i, o in enumerate(shown)], LETTERS[shown.index(correct)]


def perception_samples(rng: np.random.Generator, clip: Clip, media: str, n_probes: int = 4) -> list[TrainingSample]:
    """Captions of ``clip`` (whole and per segment) plus ``n_probes`` random single-modality probes."""
    meta = {"clip": clip.id, "duration": clip.duration}
    lines = [dense_line(s) for s in clip.segments]
    out = [world_sample(f"world-{clip.id}-caption", media, "Describe the clip segment by segment, with times.",
                   "\n".join(lines), "\n".join(lines), "caption_clip", "AV", meta=meta)]
    for seg, line in zip(clip.segments, lines, strict=True):
        out.append(world_sample(f"world-{clip.id}-s{seg.index}", media,
                           f"Describe segment {seg.index} of the clip: what is seen and heard, and when.",
                           line, line, "caption_segment", "AV", meta=meta))
    probes = _probes(rng, clip)
    for k, i in enumerate(rng.choice(len(probes), min(n_probes, len(probes)), replace=False)):
        kind, attribute, modality, question, answer = probes[int(i)]
        sid = f"world-{clip.id}-p{k + 1}"
        if attribute != "time" and rng.random() < 0.5:
            options, letter = multiple_choice(rng, attribute, answer)
            out.append(world_sample(sid, media, "\n".join([question, *options]), f"\\boxed{{{letter}}}", letter, kind,
                               modality, options, meta))
        else:
            out.append(world_sample(sid, media, question, answer, answer, kind, modality, meta=meta))
    return out


_COPY_WORDS = sorted({w for a in ("colour", "shape", "count", "motion", "sound") for w in answer_vocabulary(a)})


def option_copy_sample(rng: np.random.Generator, sid: str) -> TrainingSample:
    """Text-only letter <-> text copying over the world's answer words, both directions at random."""
    words = [_COPY_WORDS[i] for i in rng.choice(len(_COPY_WORDS), N_OPTIONS, replace=False)]
    options = [f"{LETTERS[i]}. {w}" for i, w in enumerate(words)]
    k = int(rng.integers(N_OPTIONS))
    if rng.random() < 0.5:
        return world_sample(sid, None, "\n".join([f"Which option says '{words[k]}'?", *options]),
                       f"\\boxed{{{LETTERS[k]}}}", LETTERS[k], "option_letter", "Text", options)
    return world_sample(sid, None, "\n".join([f"What does option {LETTERS[k]} say?", *options]), words[k], words[k],
                   "option_text", "Text")


# The first thing a random LLM learns to read from its (stage-0 pretrained) encoders: what is seen and heard
# at the start and at the end of a clip, with no time to resolve. Measured on the tiny base: after 600 steps
# of these the held-out colour at the start was right 0.67 of the time (0.23 with the video zeroed) and the
# shape at the end 0.92, where 600 steps of the full perception mix left both at chance.
FIRST_LAST_QUESTIONS: tuple[tuple[str, str, str], ...] = (
    ("colour", "first", "What colour is the shape at the start?"),
    ("colour", "last", "What colour is the shape at the end?"),
    ("shape", "first", "Which shape is on screen at the start?"),
    ("shape", "last", "Which shape is on screen at the end?"),
    ("count", "first", "How many shapes are on screen at the start?"),
    ("count", "last", "How many shapes are on screen at the end?"),
    ("sound", "first", "What sound is heard first?"),
    ("sound", "last", "What sound is heard last?"),
)


def first_last_answer(clip: Clip, attribute: str, end: str) -> str:
    """The answer text of a :data:`FIRST_LAST_QUESTIONS` entry on ``clip``."""
    seg = clip.segments[0] if end == "first" else clip.segments[-1]
    return answer_text(attribute, seg.attribute(attribute))


def first_last_samples(clip: Clip, media: str) -> list[TrainingSample]:
    """One open-answer sample per :data:`FIRST_LAST_QUESTIONS` entry (the base model's first curriculum stage)."""
    out = []
    for attribute, end, question in FIRST_LAST_QUESTIONS:
        answer = first_last_answer(clip, attribute, end)
        modality = "Audio-Strong" if attribute == "sound" else "Video-Strong"
        out.append(world_sample(f"world-{clip.id}-{attribute}-{end}", media, question, answer, answer,
                           f"{attribute}_{end}", modality, meta={"clip": clip.id, "duration": clip.duration}))
    return out
