"""Write real media files (H.264 video with an AAC audio track, or WAV) from numpy arrays with PyAV.

Used by the synthetic world and by tests that need media shaped like the real thing: the decoders
are then exercised on the same container and codec mix (H.264/AAC, 44.1 kHz) that benchmark videos use.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def render_av(
    path: str | Path,
    frames: np.ndarray | None,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 44100,
    crf: int = 23,
) -> Path:
    """Encode ``frames`` (T, H, W, 3) uint8 at ``fps`` and mono ``audio`` (N,) float in [-1, 1].

    Either stream may be ``None`` (a video without audio track, or an audio-only .m4a/.mp4).
    H and W must be even (yuv420p).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        vstream = astream = None
        if frames is not None:
            _t, h, w, c = frames.shape
            if c != 3 or h % 2 or w % 2:
                raise ValueError(f"frames must be (T, H, W, 3) with even H, W; got {frames.shape}")
            vstream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
            vstream.width, vstream.height, vstream.pix_fmt = w, h, "yuv420p"
            vstream.options = {"crf": str(crf), "preset": "ultrafast", "tune": "zerolatency"}
        if audio is not None:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
        if vstream is not None:
            for frame in frames.astype(np.uint8, copy=False):
                for packet in vstream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            container.mux(vstream.encode())
        if astream is not None:
            _encode_audio(container, astream, audio, sample_rate)
    return path


def _encode_audio(container, astream, audio: np.ndarray, sample_rate: int) -> None:
    samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    chunk = 1024
    for start in range(0, len(samples), chunk):
        piece = samples[start : start + chunk].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in astream.encode(frame):
            container.mux(packet)
    container.mux(astream.encode())


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = 16000) -> Path:
    """16-bit PCM mono WAV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=sample_rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        container.mux(stream.encode())
    return path


def tone(freq: float, seconds: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
