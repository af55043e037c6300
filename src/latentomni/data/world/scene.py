"""The ground truth of the synthetic world: what a clip shows and plays, segment by segment.

A clip is 2–4 back-to-back segments. Each segment shows one visual event (1–3 identical shapes of one
colour; a single shape may move) and plays one audio event (a low, mid or high tone, a noise burst, or
silence) for its whole duration. Both modalities therefore change at the same instants, the segment
boundaries, and neighbouring segments always differ in both, so every boundary can be seen *and* heard.
Questions, captions and trajectories are all computed from this structure; the media file is only a
rendering of it (``draw.py``), which is what lets the tests check the pixels and the spectrum against it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

Modality = Literal["audio", "video"]

# Far apart in hue so that an H.264 encode at 56x56 (with 4:2:0 chroma) cannot blur one into another.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 190, 70),
    "blue": (50, 90, 240),
    "yellow": (240, 215, 40),
}
SHAPES: tuple[str, ...] = ("square", "circle", "triangle", "diamond")
COUNTS: tuple[int, ...] = (1, 2, 3)
MOTIONS: tuple[str, ...] = ("still", "left", "right", "up", "down")
# Two octaves apart: distinct to the ear and far apart on Whisper's mel scale after resampling to 16 kHz.
TONES: dict[str, float] = {"low tone": 220.0, "mid tone": 880.0, "high tone": 3520.0}
SOUNDS: tuple[str, ...] = (*TONES, "noise burst", "silence")

# Which modality carries each attribute a question can refer to or ask about, and the values a segment
# can give it.
ATTRIBUTES: dict[str, Modality] = {
    "colour": "video",
    "shape": "video",
    "count": "video",
    "motion": "video",
    "sound": "audio",
}
VALUES: dict[str, tuple[str | int, ...]] = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "count": COUNTS,
    "motion": MOTIONS,
    "sound": SOUNDS,
}

NUMBER_WORDS = ("zero", "one", "two", "three", "four")


@dataclass(frozen=True, order=True)
class Visual:
    """What a segment shows. Only a single shape moves: a moving group would make 'which way' ambiguous
    as soon as one of its shapes leaves the frame."""

    shape: str
    colour: str
    count: int = 1
    motion: str = "still"

    def __post_init__(self) -> None:
        if self.shape not in SHAPES or self.colour not in COLOURS or self.motion not in MOTIONS:
            raise ValueError(f"unknown visual {self}; shapes {SHAPES}, colours {tuple(COLOURS)}, motions {MOTIONS}")
        if self.count not in COUNTS:
            raise ValueError(f"count must be one of {COUNTS}, got {self.count}")
        if self.count > 1 and self.motion != "still":
            raise ValueError(f"only a single shape moves, got {self.count} shapes moving {self.motion}")


# Every visual the world can show (4 shapes x 4 colours x (5 single + 2 still groups) = 112).
VISUALS: tuple[Visual, ...] = tuple(
    Visual(shape, colour, count, motion)
    for shape, colour in itertools.product(SHAPES, COLOURS)
    for count in COUNTS
    for motion in (MOTIONS if count == 1 else ("still",))
)


@dataclass(frozen=True)
class Segment:
    """One time window ``[start, end)`` seconds of a clip; ``index`` is 1-based as in ``[Segment n]``."""

    index: int
    start: float
    end: float
    visual: Visual
    sound: str

    @property
    def duration(self) -> float:
        return self.end - self.start

    def attribute(self, name: str) -> str | int:
        """The value of a question attribute (see :data:`ATTRIBUTES`) in this segment."""
        if name == "sound":
            return self.sound
        if name in ATTRIBUTES:
            return getattr(self.visual, name)
        raise KeyError(f"unknown attribute {name!r}; choose from {tuple(ATTRIBUTES)}")


@dataclass(frozen=True)
class Clip:
    """A clip's full ground truth. ``noise_seed`` makes the noise bursts reproducible from the record."""

    id: str
    segments: tuple[Segment, ...]
    noise_seed: int = 0

    @property
    def duration(self) -> float:
        return self.segments[-1].end

    @property
    def visuals(self) -> tuple[Visual, ...]:
        return tuple(s.visual for s in self.segments)

    @property
    def sounds(self) -> tuple[str, ...]:
        return tuple(s.sound for s in self.segments)

    def segment_at(self, t: float) -> Segment:
        for seg in self.segments:
            if seg.start <= t < seg.end:
                return seg
        raise ValueError(f"clip {self.id}: time {t} s lies outside [0, {self.duration}) s")

    def with_tracks(self, visuals: tuple[Visual, ...] | None = None, sounds: tuple[str, ...] | None = None) -> Clip:
        """The same timeline with one or both tracks replaced (used to ask what one modality alone tells)."""
        visuals = self.visuals if visuals is None else visuals
        sounds = self.sounds if sounds is None else sounds
        segs = tuple(replace(s, visual=v, sound=a) for s, v, a in zip(self.segments, visuals, sounds, strict=True))
        return replace(self, segments=segs)

    def signature(self) -> tuple:
        """Content identity (timeline and events, not the id): used to keep test clips out of training."""
        return tuple((s.start, s.end, s.visual, s.sound) for s in self.segments)


def tracks_are_valid(visuals: tuple[Visual, ...], sounds: tuple[str, ...]) -> bool:
    """The world's only constraint across segments: neighbours differ in what is seen and in what is heard,
    so that no segment boundary is invisible or inaudible."""
    return all(a != b for a, b in itertools.pairwise(visuals)) and all(a != b for a, b in itertools.pairwise(sounds))


def segment_plans(segment_seconds: tuple[float, ...], n: int, clip_multiple: float = 1.0) -> list[tuple[float, ...]]:
    """Every sequence of ``n`` segment lengths whose total is a whole multiple of ``clip_multiple`` seconds.

    Whole-second clips matter to the model: a 2 fps sampler takes frames in pairs (the vision tower's
    temporal patch), so a clip of 3.5 s gets 8 frames stretched over it and some land in the next segment;
    a clip of 4 s gets its frames on the 0.5 s grid, inside the segments the captions name.
    """
    plans = []
    for plan in itertools.product(segment_seconds, repeat=n):
        total = sum(plan) / clip_multiple
        if abs(total - round(total)) < 1e-9:
            plans.append(tuple(float(d) for d in plan))
    return plans


def sample_clip(
    rng: np.random.Generator,
    clip_id: str,
    segment_seconds: tuple[float, ...] = (1.5, 2.0),
    n_segments: tuple[int, int] = (2, 4),
    clip_multiple: float = 1.0,
) -> Clip:
    """Draw a clip: segment count, durations and events independently of any question, so that which
    questions a clip supports is a property of the clip, not something the generator arranged."""
    n = int(rng.integers(n_segments[0], n_segments[1] + 1))
    plans = segment_plans(segment_seconds, n, clip_multiple)
    if not plans:
        raise ValueError(f"no {n} segments of {segment_seconds} s add up to a multiple of {clip_multiple} s")
    plan = plans[int(rng.integers(len(plans)))]
    segments: list[Segment] = []
    t = 0.0
    prev_visual: Visual | None = None
    prev_sound: str | None = None
    for i, dur in enumerate(plan):
        visual = _draw_visual(rng)
        while visual == prev_visual:
            visual = _draw_visual(rng)
        sound = SOUNDS[int(rng.integers(len(SOUNDS)))]
        while sound == prev_sound:
            sound = SOUNDS[int(rng.integers(len(SOUNDS)))]
        segments.append(Segment(i + 1, round(t, 3), round(t + dur, 3), visual, sound))
        t += dur
        prev_visual, prev_sound = visual, sound
    return Clip(clip_id, tuple(segments), noise_seed=int(rng.integers(2**31)))


# Half the segments show a single shape (the only ones that can move), so every motion stays frequent.
COUNT_PROBS: dict[int, float] = {1: 0.5, 2: 0.25, 3: 0.25}


def _draw_visual(rng: np.random.Generator) -> Visual:
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    colour = tuple(COLOURS)[int(rng.integers(len(COLOURS)))]
    count = int(rng.choice(COUNTS, p=[COUNT_PROBS[c] for c in COUNTS]))
    motion = MOTIONS[int(rng.integers(len(MOTIONS)))] if count == 1 else "still"
    return Visual(shape, colour, count, motion)


# -- captions -------------------------------------------------------------------------------------------
def _plural(shape: str, count: int) -> str:
    return shape if count == 1 else shape + "s"


def visual_phrase(v: Visual) -> str:
    """'a red square moving left', 'two blue circles'."""
    if v.count == 1:
        return f"a {v.colour} {v.shape}" + ("" if v.motion == "still" else f" moving {v.motion}")
    return f"{NUMBER_WORDS[v.count]} {v.colour} {_plural(v.shape, v.count)}"


def audio_phrase(sound: str) -> str:
    """'a high tone', 'a noise burst', 'silence'."""
    return "silence" if sound == "silence" else f"a {sound}"


def visual_clause(v: Visual) -> str:
    """A visual-only statement without final stop: 'a red square moves left', 'two red squares are on screen'."""
    if v.count == 1:
        return f"a {v.colour} {v.shape} " + ("is on screen" if v.motion == "still" else f"moves {v.motion}")
    return f"{visual_phrase(v)} are on screen"


def audio_clause(sound: str) -> str:
    """An audio-only statement without final stop: 'a high tone sounds', 'there is silence'."""
    if sound == "silence":
        return "there is silence"
    return "a noise burst is heard" if sound == "noise burst" else f"a {sound} sounds"


def sentence(clause: str) -> str:
    return clause[0].upper() + clause[1:] + "."


def fused_clause(seg: Segment) -> str:
    """Both modalities of a segment in one statement, in the order the paper's caption fusion keeps them."""
    if seg.sound == "silence":
        return f"{visual_clause(seg.visual)} in silence"
    return f"{visual_clause(seg.visual)} while {audio_clause(seg.sound)}"


def seconds(x: float) -> str:
    return f"{x:.1f}"


def dense_line(seg: Segment) -> str:
    """'Segment 2 (2.0–4.0 s): a red square moving left; a high tone.' — the perception caption target."""
    return f"Segment {seg.index} ({seconds(seg.start)}–{seconds(seg.end)} s): {visual_phrase(seg.visual)}; " \
           f"{audio_phrase(seg.sound)}."


def full_caption(clip: Clip) -> str:
    parts = [f"A {seconds(clip.duration)}-second clip in {len(clip.segments)} segments."]
    parts += [f"From {seconds(s.start)} to {seconds(s.end)} s, {fused_clause(s)}." for s in clip.segments]
    return " ".join(parts)


def caption_record(clip: Clip, media: str) -> dict[str, Any]:
    """The ``captions.jsonl`` record of a clip, in the synthesis pipeline's native source format: the full
    caption and every timestamped visual and audio event (silence included: it is what the world's
    questions call "while it was silent")."""
    events = []
    for s in clip.segments:
        events.append({"start": s.start, "end": s.end, "modality": "visual", "text": sentence(visual_clause(s.visual))})
        events.append({"start": s.start, "end": s.end, "modality": "audio", "text": sentence(audio_clause(s.sound))})
    return {"id": clip.id, "media": media, "duration": clip.duration, "caption": full_caption(clip), "events": events}


def truth_record(clip: Clip, media: str, split: str) -> dict[str, Any]:
    """The ``ground_truth.jsonl`` record of a clip: its segments' attributes and their visual, audio and
    fused captions, from which :func:`clip_from_record` rebuilds the clip for evaluation and analysis."""
    segments = [
        {
            "segment": s.index,
            "start": s.start,
            "end": s.end,
            "shape": s.visual.shape,
            "colour": s.visual.colour,
            "count": s.visual.count,
            "motion": s.visual.motion,
            "sound": s.sound,
            "visual": sentence(visual_clause(s.visual)),
            "audio": sentence(audio_clause(s.sound)),
            "fused": sentence(fused_clause(s)),
        }
        for s in clip.segments
    ]
    return {"id": clip.id, "media": media, "split": split, "duration": clip.duration, "noise_seed": clip.noise_seed,
            "segments": segments}


def clip_from_record(record: dict[str, Any]) -> Clip:
    """Rebuild a :class:`Clip` from its ``ground_truth.jsonl`` record."""
    segs = tuple(
        Segment(s["segment"], s["start"], s["end"], Visual(s["shape"], s["colour"], s["count"], s["motion"]),
                s["sound"])
        for s in record["segments"]
    )
    return Clip(record["id"], segs, noise_seed=record["noise_seed"])
