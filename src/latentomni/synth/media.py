"""Cutting source media into segments (Sec. 3.3, "we segment the raw streams by timestamp").

Each segment becomes two files: an H.264/AAC clip of the window (the captioner's video input, audio
track kept) and a 16 kHz mono WAV of the same window (its audio input, the rate audio encoders take).
The segment's window ``[start, end)`` is what a ``[Segment n]`` citation turns into in the training
sample, so boundaries are computed once here and carried along.

:func:`segment_bounds` is pure (durations and event times in, windows out). :func:`cut_segments`
decodes the file once with PyAV and streams video frames to per-segment encoders; audio is collected
as one mono array (a few MB for a minute of 44.1 kHz audio) and sliced. Problems that make a file
unusable raise :class:`MediaError` with a reason code (``corrupt_media``, ``no_audio_track``, ...)
that the stage records as a drop.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["MediaError", "SegmentFiles", "cut_segments", "segment_bounds"]


class MediaError(RuntimeError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SegmentFiles:
    index: int
    start: float
    end: float
    video: str
    audio: str


def _fixed(duration: float, length: float, min_length: float) -> list[tuple[float, float]]:
    n = max(1, math.ceil(duration / length - 1e-9))
    bounds = [(i * length, min((i + 1) * length, duration)) for i in range(n)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_length:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


def segment_bounds(
    duration: float,
    *,
    mode: str = "fixed",
    length_s: float = 2.0,
    min_length_s: float = 1.0,
    max_length_s: float = 10.0,
    max_segments: int = 16,
    event_times: Sequence[float] = (),
) -> list[tuple[float, float]]:
    """Contiguous windows covering ``[0, duration)``.

    ``fixed``: windows of ``length_s``; a last window shorter than ``min_length_s`` joins its
    predecessor. ``events``: cut at event starts/ends, merging pieces shorter than ``min_length_s``
    into the next and splitting pieces longer than ``max_length_s`` evenly. If either mode yields more
    than ``max_segments`` windows, fall back to ``max_segments`` equal windows.
    """
    if duration <= 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    if mode == "fixed":
        bounds = _fixed(duration, length_s, min_length_s)
    elif mode == "events":
        cuts = sorted({round(t, 3) for t in event_times if 0 < t < duration})
        bounds = []
        start = 0.0
        for cut in [*cuts, duration]:
            if cut - start >= min_length_s:
                bounds.append((start, cut))
                start = cut
        if start < duration:  # a short tail joins the last window
            if bounds:
                bounds[-1] = (bounds[-1][0], duration)
            else:
                bounds.append((0.0, duration))
        split: list[tuple[float, float]] = []
        for a, b in bounds:
            pieces = max(1, math.ceil((b - a) / max_length_s - 1e-9))
            step = (b - a) / pieces
            split.extend((a + i * step, b if i == pieces - 1 else a + (i + 1) * step) for i in range(pieces))
        bounds = split
    else:
        raise ValueError(f"unknown segment mode {mode!r} (use 'fixed' or 'events')")
    if len(bounds) > max_segments:
        step = duration / max_segments
        bounds = [(i * step, duration if i == max_segments - 1 else (i + 1) * step) for i in range(max_segments)]
    return [(round(a, 3), round(b, 3)) for a, b in bounds]


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(width, height) <= max_side:
        return _even(width), _even(height)
    scale = max_side / max(width, height)
    return _even(width * scale), _even(height * scale)


def _resample(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Mono float32 resampling through FFmpeg's resampler (anti-aliased, unlike index picking)."""
    import av

    if src_rate == dst_rate or audio.size == 0:
        return audio.astype(np.float32)
    frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1).astype(np.float32), format="fltp", layout="mono")
    frame.sample_rate = src_rate
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=dst_rate)
    chunks = [f.to_ndarray()[0] for f in resampler.resample(frame)]
    chunks += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def _write_audio_stream(container, stream, samples: np.ndarray, rate: int) -> None:
    import av

    samples = np.clip(samples.astype(np.float32), -1.0, 1.0)
    for start in range(0, len(samples), 1024):
        frame = av.AudioFrame.from_ndarray(samples[start : start + 1024].reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


class _ClipWriter:
    """One segment's mp4, opened on its first frame."""

    def __init__(self, path: Path, fps: Fraction, size: tuple[int, int], audio_rate: int) -> None:
        import av

        self.container = av.open(str(path), mode="w")
        self.video = self.container.add_stream("libx264", rate=fps)
        self.video.width, self.video.height = size
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"preset": "ultrafast", "crf": "23"}
        self.audio = self.container.add_stream("aac", rate=audio_rate)
        self.audio.layout = "mono"
        self.size = size
        self.frames = 0

    def add(self, frame) -> None:
        out = frame.reformat(width=self.size[0], height=self.size[1], format="yuv420p")
        out.pts = self.frames
        self.frames += 1
        for packet in self.video.encode(out):
            self.container.mux(packet)

    def close(self, audio: np.ndarray, rate: int) -> None:
        for packet in self.video.encode(None):
            self.container.mux(packet)
        _write_audio_stream(self.container, self.audio, audio, rate)
        self.container.close()


MANIFEST = "segments.json"


def cut_segments(
    media: str | Path,
    bounds: Sequence[tuple[float, float]],
    out_dir: str | Path,
    *,
    audio_rate: int = 16000,
    max_side: int | None = None,
) -> list[SegmentFiles]:
    """Write ``seg_NN.mp4`` + ``seg_NN.wav`` for every window into ``out_dir`` (idempotent).

    The folder is built under a temporary name and renamed when complete, and a manifest records the
    windows: if it exists with the same windows the files are reused, so a killed run never leaves a
    half-written segment behind that a rerun would trust.
    """
    import av

    media, out_dir = Path(media), Path(out_dir)
    manifest = out_dir / MANIFEST
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if [tuple(b) for b in saved["bounds"]] == [tuple(b) for b in bounds]:
            return [SegmentFiles(**s) for s in saved["segments"]]
        shutil.rmtree(out_dir)
    for stale in out_dir.parent.glob(f"{out_dir.name}.tmp-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    starts = [a for a, _ in bounds]
    writers: dict[int, _ClipWriter] = {}
    audio_chunks: list[np.ndarray] = []
    audio_t0: float | None = None
    try:
        try:
            container = av.open(str(media))
        except (av.FFmpegError, OSError) as e:
            raise MediaError("corrupt_media", f"cannot open {media}: {e}") from None
        with container:
            if not container.streams.video:
                raise MediaError("no_video_track", f"{media} has no video stream")
            if not container.streams.audio:
                raise MediaError("no_audio_track", f"{media} has no audio stream")
            vstream, astream = container.streams.video[0], container.streams.audio[0]
            src_rate = astream.codec_context.sample_rate or astream.rate or 44100
            fps = Fraction(vstream.average_rate or 25).limit_denominator(1000)
            size = _target_size(vstream.codec_context.width, vstream.codec_context.height, max_side)
            to_mono = av.AudioResampler(format="fltp", layout="mono", rate=src_rate)
            try:
                for frame in container.decode(vstream, astream):
                    if frame.time is None:
                        continue
                    if isinstance(frame, av.AudioFrame):
                        if audio_t0 is None:
                            audio_t0 = frame.time
                        audio_chunks.extend(f.to_ndarray()[0] for f in to_mono.resample(frame))
                        continue
                    i = bisect.bisect_right(starts, frame.time) - 1
                    if 0 <= i < len(bounds) and frame.time < bounds[i][1]:
                        if i not in writers:
                            writers[i] = _ClipWriter(tmp / f"seg_{i + 1:02d}.mp4", fps, size, src_rate)
                        writers[i].add(frame)
                audio_chunks.extend(f.to_ndarray()[0] for f in to_mono.resample(None))
            except av.FFmpegError as e:
                raise MediaError("corrupt_media", f"decoding {media} failed: {e}") from None
        if not audio_chunks:
            raise MediaError("no_audio_track", f"{media}: the audio stream holds no samples")
        audio = np.concatenate(audio_chunks)
        audio16 = _resample(audio, src_rate, audio_rate)
        t0 = audio_t0 or 0.0
        segments = []
        for i, (a, b) in enumerate(bounds):
            if i not in writers:
                raise MediaError("empty_segment", f"{media}: no video frame in segment {i + 1} [{a}, {b})")
            lo, hi = (max(0, round((t - t0) * src_rate)) for t in (a, b))
            writers.pop(i).close(audio[lo:hi], src_rate)
            lo, hi = (max(0, round((t - t0) * audio_rate)) for t in (a, b))
            _write_wav(tmp / f"seg_{i + 1:02d}.wav", audio16[lo:hi], audio_rate)
            segments.append(SegmentFiles(i + 1, a, b, str(out_dir / f"seg_{i + 1:02d}.mp4"),
                                         str(out_dir / f"seg_{i + 1:02d}.wav")))
        (tmp / MANIFEST).write_text(json.dumps({"bounds": [list(b) for b in bounds],
                                                 "segments": [s.__dict__ for s in segments]}))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
        return segments
    finally:
        for writer in writers.values():
            with contextlib.suppress(Exception):  # a half-written file after an error; its folder goes anyway
                writer.container.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    from latentomni.data.render import write_wav

    write_wav(path, audio if audio.size else np.zeros(1, np.float32), rate)
