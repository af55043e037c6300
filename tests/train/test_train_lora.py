"""LoRA adapters train alone and are folded into plain thinker weights on save."""

import torch

from latentomni.model.wrapper import LatentOmniModel
from latentomni.train.config import LoraSection
from latentomni.train.lora import add_lora
from lo_testing import encode_batch, make_sample


def test_lora_trains_adapters_only_and_saves_merged(model, clip_dir, tmp_path):
    add_lora(model, LoraSection(enabled=True, r=4, alpha=8, dropout=0.0))
    lm = model.thinker.model.language_model
    trainable = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert trainable and all(("lora_" in n) or ("q_proj" not in n and "v_proj" not in n) for n in trainable)
    assert not any(p.requires_grad for n, p in lm.named_parameters() if n.endswith("q_proj.base_layer.weight"))
    with torch.no_grad():
        for n, p in lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)  # as if trained: the adapters now change the function
    batch = encode_batch(model, [make_sample("a")], clip_dir)
    with torch.no_grad():
        before = model(**batch).loss
    model.save_pretrained(tmp_path / "ckpt")
    loaded = LatentOmniModel.from_pretrained(tmp_path / "ckpt").eval()
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    with torch.no_grad():
        after = loaded(**encode_batch(loaded, [make_sample("a")], clip_dir)).loss
    assert torch.allclose(before, after, atol=1e-5)
