"""LoRA adapters train alone and are folded into plain thinker weights on save."""

import torch

from latentomni.model.wrapper import LatentOmniModel
from latentomni.train.config import LoraSection
from latentomni.train.lora import add_lora
from lo_testing import encode_batch, make_sample


def _as_if_trained(module) -> None:
    """Random LoRA B matrices (they start at zero): the adapters now change the function."""
    with torch.no_grad():
        for n, p in module.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)


def _saved_and_reloaded(model, clip_dir, path):
    """(loss before saving, the reloaded model, its loss) on one sample: what a save/load round trip keeps."""
    with torch.no_grad():
        before = model(**encode_batch(model, [make_sample("a")], clip_dir)).loss
    model.save_pretrained(path)
    loaded = LatentOmniModel.from_pretrained(path).eval()
    with torch.no_grad():
        after = loaded(**encode_batch(loaded, [make_sample("a")], clip_dir)).loss
    return before, loaded, after


def test_lora_trains_adapters_only_and_saves_merged(model, clip_dir, tmp_path):
    add_lora(model, LoraSection(enabled=True, r=4, alpha=8, dropout=0.0))
    lm = model.thinker.model.language_model
    trainable = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert trainable and all(("lora_" in n) or ("q_proj" not in n and "v_proj" not in n) for n in trainable)
    assert not any(p.requires_grad for n, p in lm.named_parameters() if n.endswith("q_proj.base_layer.weight"))
    _as_if_trained(lm)
    before, loaded, after = _saved_and_reloaded(model, clip_dir, tmp_path / "ckpt")
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    assert torch.allclose(before, after, atol=1e-5)


def test_save_writes_the_given_state_dict_with_its_lora_folded(model, clip_dir, tmp_path):
    """Under ZeRO-3/FSDP the Trainer hands save_pretrained the gathered state dict while the live tensors are
    shards: the checkpoint must come from that dict (adapters folded from its own A and B), never from the
    live parameters."""
    add_lora(model, LoraSection(enabled=True, r=4, alpha=8, dropout=0.0))
    _as_if_trained(model)
    batch = encode_batch(model, [make_sample("a")], clip_dir)
    with torch.no_grad():
        want = model(**batch).loss
    gathered = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # the live copy is now wrong everywhere, as a shard would be
        for p in model.parameters():
            p.zero_()
    model.save_pretrained(tmp_path / "ckpt", state_dict=gathered)
    loaded = LatentOmniModel.from_pretrained(tmp_path / "ckpt").eval()
    assert torch.allclose(loaded.log_temperature, gathered["log_temperature"])
    with torch.no_grad():
        got = loaded(**encode_batch(loaded, [make_sample("a")], clip_dir)).loss
    assert torch.allclose(got, want, atol=1e-5)


def test_expert_lora_trains_the_fused_experts_and_folds_them_on_save(tiny_qwen3_dir, clip_dir, tmp_path):
    """Qwen3-Omni's experts are fused 3-D parameters (not nn.Linear): LoRA reaches them through
    ``target_parameters`` (one rank-r pair per expert, both parameters of one block wrapped in turn), the fused
    weights stay frozen, and the saved checkpoint holds them merged: it computes what the adapted model did."""
    from latentomni.config import LatentConfig

    torch.manual_seed(0)
    model = LatentOmniModel.from_base(tiny_qwen3_dir, LatentConfig()).eval()
    section = LoraSection(enabled=True, r=2, alpha=4, dropout=0.0, target_modules=["q_proj"],
                          target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"])
    add_lora(model, section)
    lm = model.thinker.model.language_model
    fused = [(n, p) for n, p in lm.named_parameters() if n.endswith(("gate_up_proj", "down_proj"))]
    assert fused and not any(p.requires_grad for _, p in fused)
    expert_adapters = [n for n, p in lm.named_parameters() if "experts" in n and "lora_" in n and p.requires_grad]
    assert len(expert_adapters) == 4 * len(lm.layers), "A and B for gate_up_proj and down_proj in every layer"
    _as_if_trained(lm)
    before, loaded, changed = _saved_and_reloaded(model, clip_dir, tmp_path / "ckpt")
    assert not any("lora" in n or "base_layer" in n for n, _ in loaded.named_parameters())
    plain = LatentOmniModel.from_base(tiny_qwen3_dir, LatentConfig()).eval()
    with torch.no_grad():
        untouched = plain(**encode_batch(plain, [make_sample("a")], clip_dir)).loss
    assert torch.allclose(before, changed, atol=1e-5)
    assert not torch.allclose(changed, untouched, atol=1e-3), "the folded experts differ from the base's"


def test_expert_lora_on_a_dense_text_model_is_refused_in_one_line(model):
    import pytest

    section = LoraSection(enabled=True, dropout=0.0, target_parameters=["mlp.experts.gate_up_proj"])
    with pytest.raises(ValueError, match=r"target_parameters: .*qwen2.5-omni.*has: none"):
        add_lora(model, section)


def test_expert_lora_with_dropout_is_refused_at_start_up():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="dropout must be 0 with target_parameters"):
        LoraSection(enabled=True, dropout=0.05, target_parameters=["mlp.experts.down_proj"])
