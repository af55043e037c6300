"""Training configs: validation, overrides, and the shipped recipes."""

from pathlib import Path

import pytest
import torch

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
    (["data.variant=text_cot", "latent.latent_mode=true"], "data.variant 'text_cot' sets latent_mode to false"),
    (["latent.latent_mode=false"], "data.variant 'latent' sets latent_mode to true"),
    (["training.freeze_llm=true"], "leaves no language-model weight"),
    (["training.learnig_rate=1"], "Extra inputs"),
    (["training.remove_unused_columns=true"], "cannot be set: the collator needs every column"),
    (["training.warmup_steps=10", "training.warmup_ratio=0.1"], "set warmup_ratio or warmup_steps, not both"),
    (["training.adam_beta2=high"], r"training.adam_beta2\n.*valid number"),
    (["training.learning_rate=0"], r"training.learning_rate\n.*greater than 0"),
    (["training"], "not KEY=VALUE"),
])
def test_bad_configs_fail_before_anything_loads(tmp_path, over, needle):
    with pytest.raises(ValueError, match=needle):
        load_config(_write(tmp_path, BASE), over)


def test_inherit_merges_sections(tmp_path):
    (tmp_path / "parent.yaml").write_text(BASE + "latent: {num_latents: 40}\n")
    child = tmp_path / "child.yaml"
    child.write_text("inherit: parent.yaml\ndata: {variant: vanilla}\n")
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


@pytest.mark.parametrize("variant, mode", [("latent", True), ("text_cot", False), ("vanilla", False)])
def test_the_variant_is_the_one_switch_for_latent_mode(tmp_path, variant, mode):
    """latent_mode follows data.variant (a config need not, and the shipped ones do not, write it); a config that
    writes it in agreement still loads, as older configs did."""
    assert load_config(_write(tmp_path, BASE), [f"data.variant={variant}"]).latent.latent_mode is mode
    agreeing = [f"data.variant={variant}", f"latent.latent_mode={str(mode).lower()}"]
    assert load_config(_write(tmp_path, BASE), agreeing).latent.latent_mode is mode


def test_a_latent_mode_contradicting_the_variant_is_one_line_naming_the_file(tmp_path, capsys):
    from latentomni import cli

    (tmp_path / "parent.yaml").write_text(BASE + "latent: {latent_mode: true}\n")
    (tmp_path / "child.yaml").write_text("inherit: parent.yaml\ndata: {variant: vanilla}\n")
    assert cli.main(["train", "--config", str(tmp_path / "child.yaml")]) == 2
    line = capsys.readouterr().err.strip()
    assert line == (f"latentomni train: error: {tmp_path / 'parent.yaml'}: latent.latent_mode: data.variant "
                    "'vanilla' sets latent_mode to false (the variant decides it); remove latent.latent_mode from "
                    "the config (got True)")


def test_no_shipped_training_config_writes_latent_mode():
    import yaml

    for path in sorted((ROOT / "configs").glob("*/*.yaml")):
        assert "latent_mode" not in ((yaml.safe_load(path.read_text()) or {}).get("latent") or {}), path


def test_a_config_built_in_code_follows_its_variant_too():
    from latentomni.config import LatentConfig
    from latentomni.train.config import TrainConfig

    cfg = TrainConfig(model={"base": "b"}, data={"train_file": "t", "variant": "text_cot"},
                      training={"output_dir": "o"}, latent=LatentConfig(num_latents=8, num_visual=6, num_audio=2))
    assert not cfg.latent.latent_mode and cfg.latent.num_latents == 8


def test_any_training_arguments_field_passes_through(tmp_path):
    """A TrainingArguments field the project does not name reaches the Trainer as written, typed by
    TrainingArguments' own annotation (a YAML string '0.95' is the float 0.95)."""
    from latentomni.train.trainer import training_arguments

    cfg = load_config(_write(tmp_path, BASE), ["training.optim=adafactor", "training.adam_beta2='0.95'",
                                                 "training.eval_strategy=epoch", "training.warmup_steps=7",
                                                 "training.ddp_timeout=60"])
    args = training_arguments(cfg)
    assert (args.optim, args.adam_beta2, args.warmup_steps, args.ddp_timeout) == ("adafactor", 0.95, 7, 60)
    assert args.eval_strategy == "epoch"
    assert args.remove_unused_columns is False


def test_an_unknown_training_field_is_one_line_with_the_closest_name(tmp_path, capsys):
    from latentomni import cli

    path = _write(tmp_path, BASE.replace("{output_dir: out}", "{output_dir: out, optimm: adafactor}"))
    assert cli.main(["train", "--config", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (f"latentomni train: error: {path}: training.optimm: unknown field "
                                               "(did you mean training.optim?)")


def _old_training_arguments(cfg):
    """training_arguments as it was before the pass-through (every field mapped by hand), for comparison."""
    from transformers import TrainingArguments

    from latentomni.train.trainer import cpu_process_group_backend

    t = cfg.training
    bf16 = (torch.cuda.is_available() and torch.cuda.is_bf16_supported()) if t.bf16 == "auto" else t.bf16
    return TrainingArguments(
        output_dir=t.output_dir, num_train_epochs=t.num_train_epochs, max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, learning_rate=t.learning_rate,
        warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay, lr_scheduler_type=t.lr_scheduler_type,
        max_grad_norm=t.max_grad_norm, logging_steps=t.logging_steps, save_steps=t.save_steps,
        save_total_limit=t.save_total_limit, seed=t.seed, bf16=bf16, report_to=t.report_to,
        dataloader_num_workers=t.dataloader_num_workers, remove_unused_columns=False, deepspeed=t.deepspeed,
        disable_tqdm=t.disable_tqdm, ddp_backend=cpu_process_group_backend(),
    )


@pytest.mark.parametrize("path", [ROOT / "configs" / "demo" / "latent.yaml",
                                  ROOT / "configs" / "qwen2.5-omni-7b" / "latent.yaml",
                                  ROOT / "configs" / "qwen2.5-omni-7b" / "vanilla.yaml"], ids=lambda p: p.parent.name)
def test_the_shipped_configs_give_the_same_training_arguments_as_before(path):
    from latentomni.train.trainer import training_arguments

    # bf16: true (the 7B recipe) cannot be built without a bf16 GPU; it is passed the same way as false
    cfg = load_config(path, [] if torch.cuda.is_available() else ["training.bf16=false"])
    assert training_arguments(cfg).to_dict() == _old_training_arguments(cfg).to_dict()
    # and train_config.json records the same training keys as before (the sweep's resume key reads it)
    assert set(cfg.model_dump()["training"]) == OLD_TRAINING_KEYS


OLD_TRAINING_KEYS = {
    "output_dir", "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
    "learning_rate", "warmup_ratio", "weight_decay", "lr_scheduler_type", "max_grad_norm", "logging_steps",
    "save_steps", "save_total_limit", "seed", "bf16", "gradient_checkpointing", "freeze_vision", "freeze_audio",
    "freeze_llm", "lora", "report_to", "dataloader_num_workers", "deepspeed", "disable_tqdm", "max_minutes",
    "diagnostics_every", "diagnostics_samples",
}


@pytest.mark.parametrize("variant", ["text_cot", "latent"])
def test_a_checkpoint_says_which_variant_made_it(tmp_path, tiny_base_dir, variant):
    import json

    from latentomni.model.wrapper import CONFIG_NAME, LatentOmniModel
    from latentomni.train.trainer import build_model

    cfg = load_config(_write(tmp_path, BASE), [f"model.base={tiny_base_dir}", "model.dtype=float32",
                                               f"data.variant={variant}", "latent.num_latents=4",
                                               "latent.num_visual=3", "latent.num_audio=1"])
    build_model(cfg).save_pretrained(tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / CONFIG_NAME).read_text())
    assert meta["variant"] == variant and meta["latent"]["latent_mode"] is (variant == "latent")
    assert LatentOmniModel.from_pretrained(tmp_path / "ckpt").variant == variant
    # a checkpoint written before the variant was saved still loads; it does not say what it is
    del meta["variant"]
    (tmp_path / "ckpt" / CONFIG_NAME).write_text(json.dumps(meta))
    assert LatentOmniModel.from_pretrained(tmp_path / "ckpt").variant is None


def test_an_encoder_without_latent_mode_refuses_latent_blocks_and_encodes_the_baselines(model, clip_dir):
    """The one guard left where the variant meets the encoder: a latent-mode-off model given the latent variant
    (only code that bypasses TrainConfig can do so) names the sample, instead of writing K slots it cannot use."""
    from latentomni.data.collate import SampleEncoder
    from latentomni.data.features import MediaSettings
    from latentomni.data.schema import TrainingSample
    from lo_testing import make_sample

    model.latent = model.latent.model_copy(update={"latent_mode": False})
    enc = SampleEncoder.for_model(model, MediaSettings(max_pixels=56 * 56))
    sample = TrainingSample.model_validate(make_sample("s7", video=str(clip_dir / "clip4.mp4")))
    with pytest.raises(ValueError, match=r"^sample s7: variant 'latent' writes latent blocks, but this encoder's "
                                         r"model has latent_mode off; encode it as text_cot or vanilla$"):
        enc.encode(sample, clip_dir, variant="latent")
    assert not enc.encode(sample, clip_dir, variant="text_cot").windows
