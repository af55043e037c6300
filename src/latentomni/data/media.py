"""Media decoding with PyAV: video frames at a target fps within a pixel budget, audio as 16 kHz mono.

Real inputs are H.264/AAC at 44.1 kHz, from 30 seconds to 90 minutes long. Frames are sampled at the
requested fps (capped by ``max_frames``, spread evenly over the clip when the cap bites) and shrunk to the
pixel budget while decoding, so a long 1080p video never sits in memory at full size; sparse sampling of a
long video seeks instead of decoding every frame. Every failure is a :class:`MediaError` that names the file
and what is wrong, so a data loader can skip and count the sample instead of crashing the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

AUDIO_SAMPLE_RATE = 16000


class MediaError(Exception):
    """A media file that cannot serve a sample: missing, corrupt, no such stream, window outside it."""

    def __init__(self, path: str | Path, reason: str, kind: str | None = None):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason
        # A short, countable category for dataset reports ("no audio track", "cannot open media", ...).
        self.kind = kind or reason.split(" (")[0]


@dataclass
class VideoClip:
    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: float  # rate the frames were sampled at (what the processor's temporal grid assumes)
    duration: float  # seconds of the (possibly clipped) source


def _open(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise MediaError(path, f"cannot open media ({e})") from None


def _duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1e6
    return math.nan


def _fit_pixels(w: int, h: int, max_pixels: int, multiple: int = 28) -> tuple[int, int]:
    scale = min(1.0, math.sqrt(max_pixels / float(w * h)))
    nw = max(multiple, round(w * scale / multiple) * multiple)
    nh = max(multiple, round(h * scale / multiple) * multiple)
    while nw * nh > max_pixels and (nw > multiple or nh > multiple):
        if nw >= nh and nw > multiple:
            nw -= multiple
        else:
            nh -= multiple
    return nw, nh


@dataclass(frozen=True)
class MediaInfo:
    """What a container holds, read from its headers (nothing decoded)."""

    has_video: bool
    has_audio: bool
    video_duration: float  # seconds of the first video stream; nan when absent or unknown
    audio_duration: float  # seconds of the first audio stream; nan when absent or unknown


def probe_media(path: str | Path) -> MediaInfo:
    """The streams of a media file, so a caller can check the ones it needs (an audio-only file given as a
    video has no video stream, whatever its duration says)."""
    with _open(path) as c:
        v, a = c.streams.video, c.streams.audio
        return MediaInfo(bool(v), bool(a), _duration(c, v[0]) if v else math.nan,
                         _duration(c, a[0]) if a else math.nan)


def probe_duration(path: str | Path) -> float:
    """Seconds of the video stream, or of the audio stream in a file without video."""
    info = probe_media(path)
    if not (info.has_video or info.has_audio):
        raise MediaError(path, "no audio or video stream")
    return info.video_duration if info.has_video else info.audio_duration


def decode_video(
    path: str | Path,
    fps: float = 2.0,
    max_frames: int = 256,
    max_pixels: int = 448 * 448,
    start: float | None = None,
    end: float | None = None,
    min_frames: int = 2,
) -> VideoClip:
    """Decode frames sampled at ``fps`` (or fewer, evenly spaced, when ``max_frames`` caps them)."""
    with _open(path) as c:
        if not c.streams.video:
            raise MediaError(path, "no video stream")
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        total = _duration(c, stream)
        t0 = start or 0.0
        t1 = end if end is not None else total
        if math.isnan(t1):
            raise MediaError(path, "unknown duration; pass an explicit end time")
        if t0 >= t1 or (not math.isnan(total) and t0 >= total):
            raise MediaError(path, f"clip window [{t0:.2f}, {t1:.2f}) s is empty or outside the video ({total:.2f} s)")
        span = t1 - t0
        n = max(min_frames, min(max_frames, round(span * fps)))
        n += n % 2  # the vision tower groups frames in pairs
        times = t0 + (np.arange(n) + 0.5) * span / n
        eff_fps = n / span
        w, h = _fit_pixels(stream.codec_context.width, stream.codec_context.height, max_pixels)
        try:
            frames = (_seek_frames if span / n > 2.0 else _scan_frames)(c, stream, times, w, h)
        except av.error.FFmpegError as e:
            raise MediaError(path, f"corrupt video stream ({e})") from None
        if not frames:
            raise MediaError(path, "no decodable video frames")
        while len(frames) < n:  # truncated file: repeat the last frame rather than shift the timeline
            frames.append(frames[-1])
        return VideoClip(np.stack(frames), eff_fps, span)


def _scan_frames(c, stream, times: np.ndarray, w: int, h: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    i = 0
    last = None
    for frame in c.decode(stream):
        if frame.time is None:
            continue
        while i < len(times) and frame.time >= times[i]:
            out.append(frame.to_ndarray(width=w, height=h, format="rgb24"))
            i += 1
        last = frame
        if i >= len(times):
            break
    if last is not None and i < len(times):
        tail = last.to_ndarray(width=w, height=h, format="rgb24")
        out.extend(tail for _ in range(len(times) - i))
    return out


def _seek_frames(c, stream, times: np.ndarray, w: int, h: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for t in times:
        c.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
        picked = None
        for frame in c.decode(stream):
            picked = frame
            if frame.time is not None and frame.time >= t:
                break
        if picked is not None:
            out.append(picked.to_ndarray(width=w, height=h, format="rgb24"))
    return out


def decode_audio(
    path: str | Path, start: float | None = None, end: float | None = None, sample_rate: int = AUDIO_SAMPLE_RATE
) -> np.ndarray:
    """Decode the first audio stream, resampled to ``sample_rate`` mono float32 in [-1, 1]."""
    with _open(path) as c:
        if not c.streams.audio:
            raise MediaError(path, "no audio track")
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        # A window ending early need not decode the rest of the track (a probe of a 90-minute file reads
        # half a second, not all of it).
        needed = round(end * sample_rate) if end is not None else None
        decoded = 0
        try:
            for frame in c.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    decoded += chunks[-1].size
                if needed is not None and decoded >= needed:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            raise MediaError(path, f"corrupt audio stream ({e})") from None
    # Decoding from the stream start and trimming by sample count is exact; AAC decodes at hundreds of x
    # real time, so even a 90-minute track costs seconds, and a window stops decoding at its end.
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    first = round((start or 0.0) * sample_rate)
    last = round(end * sample_rate) if end is not None else len(audio)
    audio = audio[first:last]
    if audio.size == 0:
        raise MediaError(path, "audio track holds no samples in the requested window")
    return audio.astype(np.float32, copy=False)
