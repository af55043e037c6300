"""Training configs: validation, overrides, and the shipped recipes."""

from pathlib import Path

import pytest

from latentomni.train.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


BASE = """
model: {base: /nowhere}
data: {train_file: t.jsonl}
training: {output_dir: out}
"""


def test_overrides_reach_every_section(tmp_path):
    cfg = load_config(_write(tmp_path, BASE), ["training.learning_rate=3e-4", "latent.ospe=false",
                                                 "data.media.fps=1", "latent.num_latents=16",
                                                 "latent.num_visual=12", "latent.num_audio=4"])
    assert cfg.training.learning_rate == 3e-4 and not cfg.latent.ospe and cfg.data.media.fps == 1
    assert cfg.latent.num_latents == 16


@pytest.mark.parametrize("over, needle", [
    (["latent.num_visual=30"], "Kv=30"),
    (["data.variant=text_cot"], "is a baseline: set latent.latent_mode: false"),
    (["training.freeze_llm=true"], "leaves no language-model weight"),
    (["training.learnig_rate=1"], "Extra inputs"),
    (["training"], "not KEY=VALUE"),
])
def test_bad_configs_fail_before_anything_loads(tmp_path, over, needle):
    with pytest.raises(ValueError, match=needle):
        load_config(_write(tmp_path, BASE), over)


def test_inherit_merges_sections(tmp_path):
    (tmp_path / "parent.yaml").write_text(BASE + "latent: {num_latents: 40}\n")
    child = tmp_path / "child.yaml"
    child.write_text("inherit: parent.yaml\nlatent: {latent_mode: false}\ndata: {variant: vanilla}\n")
    cfg = load_config(child)
    assert cfg.data.variant == "vanilla" and cfg.data.train_file == "t.jsonl" and not cfg.latent.latent_mode


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "qwen2.5-omni-7b").glob("*.yaml")), ids=lambda p: p.stem)
def test_paper_recipes_validate_and_build_a_tiny_model(path, tiny_base_dir):
    from latentomni.train.trainer import build_model

    cfg = load_config(path, [f"model.base={tiny_base_dir}", "model.dtype=float32"])
    if cfg.data.variant == "latent" and path.stem == "latent":
        lat = cfg.latent
        assert (lat.num_latents, lat.num_visual, lat.num_audio, lat.lambda_latent, lat.lambda_sync) == \
            (40, 32, 8, 0.005, 1.0)
        assert cfg.training.learning_rate == 1e-5 and cfg.training.num_train_epochs == 2
        assert cfg.training.per_device_train_batch_size * cfg.training.gradient_accumulation_steps * 8 == 128
    model = build_model(cfg)
    assert model.latent == cfg.latent
    assert not any(p.requires_grad for p in model.thinker.model.visual.parameters()), "vision tower frozen"
    assert any(p.requires_grad for p in model.thinker.model.language_model.parameters())


def test_accelerate_configs_exist_for_each_strategy():
    names = {p.name for p in (ROOT / "configs" / "accelerate").iterdir()}
    assert {"zero2.yaml", "zero3.yaml", "fsdp.yaml", "ds_zero2.json", "ds_zero3.json"} <= names
