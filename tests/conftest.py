"""Shared fixtures: a tiny random Qwen2.5-Omni thinker saved to disk, and media rendered by the tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentomni.data.render import render_av, tone

torch.set_num_threads(2)

SEGMENT_COLOURS = [(220, 40, 40), (40, 80, 220), (40, 200, 60), (230, 210, 40)]
SEGMENT_TONES = [330.0, 660.0, 1320.0, 220.0]


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    from latentomni.model.tiny import build_tiny_base

    out = tmp_path_factory.mktemp("tiny_base")
    build_tiny_base(out, seed=0)
    return out


def render_clip(path, seconds: float = 4.0, fps: int = 4, size: int = 56, with_audio: bool = True,
                sample_rate: int = 44100):
    """A clip of 1-second segments, each a coloured square and a tone (H.264 + AAC 44.1 kHz)."""
    n = int(seconds * fps)
    frames = np.zeros((n, size, size, 3), np.uint8)
    audio = []
    for s in range(int(np.ceil(seconds))):
        colour = SEGMENT_COLOURS[s % len(SEGMENT_COLOURS)]
        frames[s * fps:(s + 1) * fps, 16:40, 16:40] = colour
        audio.append(tone(SEGMENT_TONES[s % len(SEGMENT_TONES)], 1.0, sample_rate))
    wave = np.concatenate(audio)[: int(seconds * sample_rate)] if with_audio else None
    return render_av(path, frames, fps, wave, sample_rate)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    render_clip(d / "clip4.mp4", seconds=4.0)
    render_clip(d / "clip3.mp4", seconds=3.0)
    render_clip(d / "silent.mp4", seconds=2.0, with_audio=False)
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return d


def make_sample(sid: str = "s1", video: str = "clip4.mp4", blocks=((0.0, 2.0),), answer: str = "B",
                text: str = "The tone matters.", tail: str = "It is blue."):
    parts = [{"type": "text", "text": text}]
    for i, (a, b) in enumerate(blocks):
        parts.append({"type": "latent", "segment": i + 1, "start": a, "end": b})
        parts.append({"type": "text", "text": tail if i == len(blocks) - 1 else "Next."})
    parts[-1]["text"] += f" \\boxed{{{answer}}}"
    return {
        "id": sid,
        "messages": [
            {"role": "user", "content": [
                {"type": "video", "video": video},
                {"type": "text", "text": "What colour?\nA. red\nB. blue\nC. green\nD. yellow"},
            ]},
            {"role": "assistant", "content": parts},
        ],
        "answer": answer,
        "options": ["A. red", "B. blue", "C. green", "D. yellow"],
    }


@pytest.fixture
def model(tiny_base_dir):
    """A fresh LatentOmni wrapper around the tiny base (K=40, 32/8), in eval mode."""
    from latentomni.config import LatentConfig
    from latentomni.model.wrapper import LatentOmniModel

    torch.manual_seed(0)
    return LatentOmniModel.from_base(tiny_base_dir, LatentConfig()).eval()


def encode_batch(model, samples, base_dir, for_generation=False, variant="latent", **media):
    from latentomni.data.collate import MediaSettings, SampleEncoder, collate
    from latentomni.data.schema import parse_sample

    enc = SampleEncoder(model.processor, model.latent, model.token_ids, MediaSettings(max_pixels=56 * 56, **media))
    encoded = [enc.encode(parse_sample(s), base_dir, variant=variant, for_generation=for_generation)
               for s in samples]
    side = "left" if for_generation else "right"
    return collate(encoded, model.processor.tokenizer.pad_token_id, padding_side=side)
