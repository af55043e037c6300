"""Render a clip's ground truth to pixels and samples, and encode it with :func:`latentomni.data.render.render_av`.

Cost matters because a demo renders thousands of clips on two cores: shapes are pasted as precomputed
boolean masks into one preallocated frame array, tones are vectorised sines, and nothing loops per pixel.
Encoding the AAC track dominates the time (H.264 at 56x56 is nearly free).

Frames are rendered at 4 fps by default although the model samples 2 fps: the decoder picks, for each
sample time ``(k + 0.5) / 2`` s, the first frame at or after it, and at 4 fps that frame starts exactly at
the sample time, so sampled frames never straddle a segment boundary.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from latentomni.data.render import render_av, tone
from latentomni.data.world.scene import COLOURS, TONES, Clip, Visual

BACKGROUND = (16, 16, 16)
TONE_AMPLITUDE = 0.4
NOISE_STD = 0.2
FADE_SECONDS = 0.01  # short ramps: no clicks, and two segments never sound like one continuous event


def shape_size(frame_size: int) -> int:
    """Side of a shape's bounding box in pixels (12 px in a 56 px frame: three fit side by side)."""
    return max(4, round(frame_size * 0.22))


@lru_cache(maxsize=64)
def shape_mask(shape: str, px: int) -> np.ndarray:
    """Boolean (px, px) mask; the triangle points up. The box centre lies inside every shape, which is
    where the tests read back the colour."""
    y, x = np.mgrid[0:px, 0:px] + 0.5
    c, r = px / 2, px / 2
    if shape == "square":
        mask = np.ones((px, px), bool)
    elif shape == "circle":
        mask = (x - c) ** 2 + (y - c) ** 2 <= r**2
    elif shape == "diamond":
        mask = np.abs(x - c) + np.abs(y - c) <= r
    elif shape == "triangle":
        mask = np.abs(x - c) <= y / px * r
    else:
        raise ValueError(f"unknown shape {shape!r}")
    mask.setflags(write=False)
    return mask


def shape_centres(visual: Visual, progress: float, frame_size: int) -> list[tuple[float, float]]:
    """Centres (x, y) in pixels of the shapes of ``visual`` at ``progress`` in [0, 1) of its segment.

    A moving shape crosses the frame once per segment; a group stands in a row across the middle.
    """
    px = shape_size(frame_size)
    mid = frame_size / 2
    lo, hi = px / 2 + 2, frame_size - px / 2 - 2
    travel = {"left": (hi, lo), "right": (lo, hi), "up": (hi, lo), "down": (lo, hi)}
    if visual.motion in ("left", "right"):
        a, b = travel[visual.motion]
        return [(a + (b - a) * progress, mid)]
    if visual.motion in ("up", "down"):
        a, b = travel[visual.motion]
        return [(mid, a + (b - a) * progress)]
    spacing = 1.5 * px
    return [(mid + (i - (visual.count - 1) / 2) * spacing, mid) for i in range(visual.count)]


def draw_frames(clip: Clip, frame_size: int = 56, fps: float = 4.0) -> np.ndarray:
    """(T, H, W, 3) uint8 frames, frame k showing time k / fps."""
    n = round(clip.duration * fps)
    frames = np.empty((n, frame_size, frame_size, 3), np.uint8)
    frames[:] = BACKGROUND
    px = shape_size(frame_size)
    for k in range(n):
        t = k / fps
        seg = clip.segment_at(t)
        mask = shape_mask(seg.visual.shape, px)
        colour = np.array(COLOURS[seg.visual.colour], np.uint8)
        for cx, cy in shape_centres(seg.visual, (t - seg.start) / seg.duration, frame_size):
            x0, y0 = round(cx - px / 2), round(cy - px / 2)
            frames[k, y0 : y0 + px, x0 : x0 + px][mask] = colour
    return frames


@lru_cache(maxsize=32)
def _envelope(length: int, sample_rate: int) -> np.ndarray:
    ramp = min(round(FADE_SECONDS * sample_rate), length // 2)
    env = np.ones(length, np.float32)
    if ramp:
        env[:ramp] = np.linspace(0.0, 1.0, ramp, endpoint=False, dtype=np.float32)
        env[length - ramp :] = env[:ramp][::-1]
    env.setflags(write=False)
    return env


def synth_audio(clip: Clip, sample_rate: int = 44100) -> np.ndarray:
    """Mono float32 track: each segment's tone, noise burst or silence over its window, with short fades."""
    audio = np.zeros(round(clip.duration * sample_rate), np.float32)
    rng = np.random.default_rng(clip.noise_seed)
    for seg in clip.segments:
        a, b = round(seg.start * sample_rate), round(seg.end * sample_rate)
        if seg.sound in TONES:
            wave = tone(TONES[seg.sound], (b - a) / sample_rate, sample_rate, TONE_AMPLITUDE)[: b - a]
        elif seg.sound == "noise burst":
            wave = np.clip(rng.standard_normal(b - a, dtype=np.float32) * NOISE_STD, -1.0, 1.0)
        else:
            continue
        audio[a:b] = wave * _envelope(b - a, sample_rate)
    return audio


def render_clip(clip: Clip, path: str | Path, frame_size: int = 56, fps: float = 4.0, sample_rate: int = 44100) -> Path:
    """Write ``clip`` as an H.264 + AAC mp4 at ``path``."""
    return render_av(path, draw_frames(clip, frame_size, fps), fps, synth_audio(clip, sample_rate), sample_rate)
