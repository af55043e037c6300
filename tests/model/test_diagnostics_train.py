"""The training hook of the latent diagnostics: ``training.diagnostics_every`` logs latent/* beside the
loss terms (TensorBoard and trainer_state.json)."""

import json

import pytest

from lo_testing import make_sample


def _config(tmp_path, tiny_base_dir, clip_dir, extra: str = "", variant: str = "latent"):
    rows = []
    for i in range(4):
        r = make_sample(f"s{i}", video=str(clip_dir / ("clip4.mp4" if i % 2 else "clip3.mp4")),
                        blocks=((0.0, 1.0), (1.0, 2.0)))
        r["meta"] = {"segments": [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]}
        rows.append(r)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    latent = "{num_latents: 4, num_visual: 3, num_audio: 1}" if variant == "latent" else "{latent_mode: false}"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"""
model: {{base: {tiny_base_dir}}}
latent: {latent}
data: {{train_file: {data}, variant: {variant}, media: {{max_pixels: 3136}}, cache_encoded: true,
       allow_absolute_media: true}}
training: {{output_dir: {tmp_path / 'out'}, max_steps: 2, per_device_train_batch_size: 2, learning_rate: 1.0e-3,
           logging_steps: 1, save_steps: 100, report_to: [], disable_tqdm: true, seed: 0, {extra}}}
""")
    return cfg


def test_diagnostics_are_logged_every_n_steps_and_at_the_end(tmp_path, tiny_base_dir, clip_dir):
    from latentomni.cli import main

    cfg = _config(tmp_path, tiny_base_dir, clip_dir, "diagnostics_every: 1, diagnostics_samples: 3")
    assert main(["train", "--config", str(cfg)]) == 0
    logs = json.loads((tmp_path / "out" / "trainer_state.json").read_text())["log_history"]
    diag = [r for r in logs if "latent/retrieval" in r]
    assert [r["step"] for r in diag] == [1, 2]
    for r in diag:
        assert r["latent/blocks"] == 6, "3 probe samples, 2 blocks each"
        assert r["latent/retrieval_chance"] == pytest.approx(1 / 3)
        assert {"latent/fidelity_cos", "latent/retrieval_trigger", "latent/value_own", "latent/value_zeros",
                "latent/value_anchors", "latent/value_other"} <= r.keys()
    assert all("loss_text" in r for r in logs if "loss" in r), "the loss terms are still logged"


def test_diagnostics_on_a_baseline_variant_are_refused(tmp_path, tiny_base_dir, clip_dir):
    from latentomni.train.config import load_config

    cfg = _config(tmp_path, tiny_base_dir, clip_dir, "diagnostics_every: 5", variant="vanilla")
    with pytest.raises(ValueError, match=r"diagnostics_every measures latent blocks; data\.variant 'vanilla'"):
        load_config(cfg)
