"""The Qwen3-Omni-30B-A3B and Qwen2.5-Omni-3B recipes: each loads, validates and builds the tiny model of its family
with the same settings; the tiny Qwen3-Omni config trains on the CPU."""

import json
from pathlib import Path

import pytest
import torch

from latentomni.train.config import load_config
from lo_testing import encode_batch, make_sample

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted([*(ROOT / "configs" / "qwen3-omni-30b-a3b").glob("*.yaml"),
                  *(ROOT / "configs" / "qwen2.5-omni-3b").glob("*.yaml"),
                  *(ROOT / "configs" / "qwen3-omni-tiny").glob("*.yaml")])
HIDDEN = {"qwen2.5-omni-7b": 3584, "qwen2.5-omni-3b": 2048, "qwen3-omni-30b-a3b": 2048}


def _family(path: Path) -> str:
    return "qwen3-omni" if path.parent.name.startswith("qwen3") else "qwen2.5-omni"


def test_every_family_recipe_folder_has_the_method_and_both_baselines():
    for folder in ("qwen3-omni-30b-a3b", "qwen2.5-omni-3b"):
        variants = {load_config(ROOT / "configs" / folder / f"{v}.yaml").data.variant
                    for v in ("latent", "text_cot", "vanilla")}
        assert variants == {"latent", "text_cot", "vanilla"}


def test_lambda_latent_is_stated_per_hidden_size():
    """Eq. 5 sums over the hidden dimension: λ1 x hidden is the paper's 0.005 x 3584 in every recipe."""
    for folder, hidden in HIDDEN.items():
        lam = load_config(ROOT / "configs" / folder / "latent.yaml").latent.lambda_latent
        assert lam * hidden == pytest.approx(0.005 * 3584), folder


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_builds_the_tiny_model_of_its_family(path, request, clip_dir):
    from latentomni.train.trainer import build_model

    family = _family(path)
    base = request.getfixturevalue("tiny_qwen3_dir" if family == "qwen3-omni" else "tiny_base_dir")
    cfg = load_config(path)
    assert ("Qwen3-Omni" in cfg.model.base or "qwen3" in cfg.model.base) == (family == "qwen3-omni")
    cfg = load_config(path, [f"model.base={base}", "model.dtype=float32"])
    torch.manual_seed(0)
    model = build_model(cfg)
    assert model.backbone.family == family
    assert model.latent == cfg.latent
    lm = model.thinker.model.language_model
    trainable = [n for n, p in lm.named_parameters() if p.requires_grad]
    if cfg.training.lora.enabled:
        assert trainable and all("lora_" in n for n in trainable), "only the adapters train"
        assert not any("mlp.gate" in n for n in trainable), "routers stay frozen"
        expert_adapters = any("experts" in n for n in trainable)
        assert expert_adapters == bool(cfg.training.lora.target_parameters)
    frozen = all(not p.requires_grad for p in model.thinker.model.visual.parameters())
    assert frozen == cfg.training.freeze_vision
    batch = encode_batch(model, [make_sample("a")], clip_dir, variant=cfg.data.variant)
    out = model.train()(**batch)
    assert torch.isfinite(out.loss)
    assert (out.loss_router is not None) == (family == "qwen3-omni")
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lm.parameters() if p.requires_grad)


def test_the_tiny_qwen3_config_trains_on_the_cpu(tmp_path, tiny_qwen3_dir, clip_dir):
    from latentomni.cli import main
    from latentomni.model.backbone import Qwen3Omni
    from latentomni.model.wrapper import LatentOmniModel

    rows = [make_sample(f"s{i}", video=str(clip_dir / ("clip4.mp4" if i % 2 else "clip3.mp4")),
                        blocks=((0.0, 1.5), (1.5, 3.0))) for i in range(4)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    cfg = ROOT / "configs" / "qwen3-omni-tiny" / "latent.yaml"
    sets = [f"model.base={tiny_qwen3_dir}", f"data.train_file={data}", "data.allow_absolute_media=true",
            f"training.output_dir={out}"]
    assert main(["train", "--config", str(cfg), *(a for s in sets for a in ("--set", s))]) == 0
    logs = [r for r in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in r]
    assert len(logs) == 4
    for r in logs:
        assert {"loss_text", "loss_latent", "loss_sync", "loss_router", "temperature"} <= r.keys()
        assert r["loss_router"] > 0
    model = LatentOmniModel.from_pretrained(out / "checkpoint-2")
    assert isinstance(model.backbone, Qwen3Omni) and model.latent.num_latents == 8
    assert not any("lora_" in k for k in model.thinker.state_dict()), "LoRA is folded into the checkpoint"
