"""Evaluation on Qwen3-Omni: ``latentomni eval`` and the predictor on a tiny Qwen3-Omni LatentOmni checkpoint.

The evaluation path holds no family fact of its own: the checkpoint's config.json picks the backbone, and the
wrapper, the encoder and the decoding loop ask it. These tests prove the whole path runs on the second family
(MoE text model, DeepStack visual features, ~13 audio tokens a second, audio and video interleaved one by one)
with a Daily-Omni layout, the clip's own audio track interleaved, and batched left-padded decoding.
"""

import json

import numpy as np
import pytest

from latentomni import cli
from latentomni.data.questions import EvalItem
from latentomni.data.render import render_av, tone, write_wav
from latentomni.inference.predictor import LatentOmniPredictor
from lo_testing import spy_audio_in_video

OPTIONS = ["A. red", "B. blue", "C. green", "D. yellow"]


def _clip(path, seconds: int = 2, fps: int = 4, size: int = 56):
    """One coloured square per second, each with its own tone."""
    colours, freqs = [(220, 40, 40), (40, 80, 220), (40, 200, 60)], [330.0, 660.0, 1320.0]
    frames = np.zeros((seconds * fps, size, size, 3), np.uint8)
    for s in range(seconds):
        frames[s * fps:(s + 1) * fps, 16:40, 16:40] = colours[s % 3]
    wave = np.concatenate([tone(freqs[s % 3], 1.0, 44100) for s in range(seconds)])
    return render_av(path, frames, fps, wave, 44100)


@pytest.fixture(scope="module")
def qwen3_ckpt(tiny_qwen3_dir, tmp_path_factory):
    from latentomni.model.wrapper import LatentOmniModel

    out = tmp_path_factory.mktemp("tiny_qwen3_ckpt")
    LatentOmniModel.from_base(tiny_qwen3_dir).save_pretrained(out)
    return out


def test_eval_daily_omni_on_the_tiny_qwen3_checkpoint(qwen3_ckpt, tmp_path, monkeypatch):
    """qa.json + Videos/<id>/<id>_video.mp4 (and the separate wav, unused by default), through the command line,
    two questions in one predict() call."""
    root = tmp_path / "daily_omni"
    for vid, seconds in (("d1", 2), ("d2", 3)):  # unequal clips: the batch is left-padded
        _clip(root / "Videos" / vid / f"{vid}_video.mp4", seconds)
        write_wav(root / "Videos" / vid / f"{vid}_audio.wav", tone(440.0, float(seconds), 16000))
    qa = [{"Question": f"Which colour is first in {vid}?", "Choice": OPTIONS, "Answer": ans, "video_id": vid,
           "Type": typ, "video_category": "Music", "video_duration": "30s"}
          for vid, ans, typ in (("d1", "A", "AV Event Alignment"), ("d2", "B", "Reasoning"))]
    (root / "qa.json").write_text(json.dumps(qa))

    seen: dict[str, object] = {}
    attach = LatentOmniPredictor._attach

    def spy(self, model, *args, **kwargs):
        seen["family"] = model.backbone.family
        return attach(self, model, *args, **kwargs)

    monkeypatch.setattr(LatentOmniPredictor, "_attach", spy)
    modes = spy_audio_in_video(monkeypatch)
    out = tmp_path / "runs" / "qwen3" / "daily_omni"
    code = cli.main(["eval", "--model", str(qwen3_ckpt), "--benchmark", "daily_omni",
                     "--annotations", str(root / "qa.json"), "--media-root", str(root / "Videos"), "--out", str(out),
                     "--no-progress", "--batch-size", "2", "--set", "decoding.max_new_tokens=8",
                     "--set", "media.max_pixels=3136"])
    assert code == 0
    assert seen["family"] == "qwen3-omni"
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["qid"] for p in predictions] == ["d1#1", "d2#1"]
    assert all(isinstance(p["reply"], str) and "error" not in p for p in predictions), predictions
    assert all(p["pred"] is None or p["pred"] in "ABCD" for p in predictions)
    assert modes == {"d1#1": True, "d2#1": True}, "Daily-Omni uses the clip's own audio track"
    results = json.loads((out / "results.json").read_text())
    assert results["benchmark"] == "daily_omni" and results["n"] == 2 and results["complete"]
    assert results["n_missing_media"] == 0 and 0.0 <= results["accuracy"] <= 1.0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["predictor"]["max_pixels"] == 3136 and settings["predictor"]["decoding"]["max_new_tokens"] == 8


def _items(videos):
    return [EvalItem(benchmark="t", qid=f"q{i}", question=f"Which colour comes first in clip {i}?", options=OPTIONS,
                     answer="A", video=v, audio=None, use_audio=True) for i, v in enumerate(videos)]


def test_qwen3_predictor_batched_replies_equal_one_by_one(qwen3_ckpt, tmp_path):
    """Left-padded batched decoding (DeepStack features gathered per row, interleaved audio-in-video positions)
    gives each question the reply it gets alone; a silent clip falls back to vision only, as on Qwen2.5."""
    clips = [_clip(tmp_path / "a.mp4", 2), _clip(tmp_path / "b.mp4", 3)]
    silent = tmp_path / "silent.mp4"
    render_av(silent, np.zeros((8, 56, 56, 3), np.uint8), 4)
    pred = LatentOmniPredictor(str(qwen3_ckpt), max_new_tokens=12, max_pixels=3136, device="cpu", dtype="float32")
    assert pred.model.backbone.family == "qwen3-omni"
    items = _items([*clips, silent])
    together = pred.predict(items)
    alone = [pred.predict([item])[0] for item in items]
    assert together == alone
    assert all("error" not in o and isinstance(o["reply"], str) for o in together)
    assert [o.get("note") for o in together] == [None, None, "vision only: no audio track"]


def test_qwen3_predictor_with_a_latent_block_batched_equals_one_by_one(qwen3_ckpt, tmp_path, monkeypatch):
    """The same with the latent trigger forced at the third step, so each reply holds one latent block decoded
    with the KV cache (a random tiny model does not emit the trigger by itself)."""
    from latentomni.inference import predictor as predictor_module

    generate = predictor_module.generate

    def forced(model, batch, cfg, **kwargs):
        def trigger_at_step_2(step, logits):
            if step == 2:
                logits[:, model.token_ids.start] = 1e4
            return logits
        return generate(model, batch, cfg, logits_processor=trigger_at_step_2)

    monkeypatch.setattr(predictor_module, "generate", forced)
    clips = [_clip(tmp_path / "a.mp4", 2), _clip(tmp_path / "b.mp4", 3)]
    pred = LatentOmniPredictor(str(qwen3_ckpt), max_new_tokens=60, max_pixels=3136, device="cpu", dtype="float32")
    items = _items(clips)
    together = pred.predict(items)
    alone = [pred.predict([item])[0] for item in items]
    assert [o["n_latent_blocks"] for o in together] == [1, 1]
    assert together == alone
