"""Test helpers shared across folders (import as ``from lo_testing import ...``; a module named
``conftest`` would clash between test folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentomni.data.render import render_av, tone

SEGMENT_COLOURS = [(220, 40, 40), (40, 80, 220), (40, 200, 60), (230, 210, 40)]
SEGMENT_TONES = [330.0, 660.0, 1320.0, 220.0]
# Audio tokens a second of each family's encoder, as the released models have them (Qwen2.5-Omni: one per 40 ms;
# Qwen3-Omni: 13 per 1-second window), written here so tests check the backbone against them.
AUDIO_TOKENS_PER_SECOND = {"qwen2.5-omni": 25, "qwen3-omni": 13}


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


def encode_batch(model, samples, base_dir, for_generation=False, variant="latent", **media):
    from latentomni.data.collate import SampleEncoder, collate
    from latentomni.data.features import MediaSettings
    from latentomni.data.schema import parse_sample

    enc = SampleEncoder.for_model(model, MediaSettings(max_pixels=56 * 56, **media))
    encoded = [enc.encode(parse_sample(s), base_dir, variant=variant, for_generation=for_generation)
               for s in samples]
    side = "left" if for_generation else "right"
    return collate(encoded, model.processor.tokenizer.pad_token_id, padding_side=side)


def write_train_config(tmp_path, base, rows, **training) -> Path:
    """rows as train.jsonl beside a tiny training config (K=8: 6 visual + 2 audio, clip paths absolute);
    ``training`` overrides the training section. Returns the config's path; the run writes to tmp_path/out."""
    import json

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    section = {"output_dir": str(tmp_path / "out"), "max_steps": 4, "per_device_train_batch_size": 2,
               "learning_rate": 1.0e-3, "logging_steps": 1, "save_steps": 2, "report_to": [],
               "disable_tqdm": True, "seed": 0, **training}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({
        "model": {"base": str(base)}, "latent": {"num_latents": 8, "num_visual": 6, "num_audio": 2},
        "data": {"train_file": str(data), "media": {"max_pixels": 3136}, "cache_encoded": True,
                 "allow_absolute_media": True},
        "training": section}))
    return cfg


def spy_evaluated_clips(monkeypatch) -> list[str]:
    """Wrap ``LatentOmniPredictor.predict`` (the one prediction path of the demo, the sweep and ``eval``) in a
    pass-through that records the world clip of every question it is asked; returns that (growing) list, so a
    test can check which split was evaluated."""
    from latentomni.inference.predictor import LatentOmniPredictor

    asked: list[str] = []
    predict = LatentOmniPredictor.predict

    def spy(self, items):
        asked.extend(it.meta["clip"] for it in items)
        return predict(self, items)

    monkeypatch.setattr(LatentOmniPredictor, "predict", spy)
    return asked


def spy_audio_in_video(monkeypatch) -> dict[str, bool]:
    """Wrap ``LatentOmniPredictor.encode`` in a pass-through that records, per question id, its mode: whether the
    prompt interleaved the video's own audio track. Returns that (growing) dict, so a test can check which
    benchmarks listen to the clip and which run vision only."""
    from latentomni.inference.predictor import LatentOmniPredictor

    modes: dict[str, bool] = {}
    encode = LatentOmniPredictor.encode

    def spy(self, question, video, audio, use_audio, sid="q"):
        result = encode(self, question, video, audio, use_audio, sid)
        modes[sid] = result[1]
        return result

    monkeypatch.setattr(LatentOmniPredictor, "encode", spy)
    return modes


def force_trigger_at(model, step: int):
    """A logits processor that makes ``model``'s latent trigger the greedy choice at decoding step ``step`` and
    leaves every other step alone (a random tiny model does not emit the trigger by itself)."""
    def process(s, logits):
        if s == step:
            logits[:, model.token_ids.start] = 1e4
        return logits
    return process


def sigint_as_a_terminal_sends_it() -> None:
    """``preexec_fn`` for a child that a test will Ctrl-C: SIGINT back to its default disposition. A shell
    starts background jobs with SIGINT ignored, the ignore is inherited across exec, and Python then installs no
    KeyboardInterrupt handler: the child would never see the test's SIGINT (what a user's terminal sends)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
