"""Optional LoRA on the language model (peft), saved merged so checkpoints stay plain thinker weights.

Adapters are injected into the unmodified text model with ``peft.inject_adapter_in_model``; the wrapper's
``save_pretrained`` folds them back (W + scale * B A) so that any checkpoint -- LoRA or not -- loads with
``LatentOmniModel.from_pretrained`` and ``Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained``.
"""

from __future__ import annotations

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer


def add_lora(model, section) -> None:
    cfg = LoraConfig(r=section.r, lora_alpha=section.alpha, lora_dropout=section.dropout,
                     target_modules=list(section.target_modules))
    lm = model.thinker.model.language_model
    inject_adapter_in_model(cfg, lm)
    for name, p in lm.named_parameters():
        if "lora_" in name:
            p.requires_grad_(True)
        elif p.requires_grad and any(t in name for t in section.target_modules):
            p.requires_grad_(False)  # the adapted base weights stay frozen; other LLM weights follow freeze_llm


def merged_state_dict(thinker) -> dict[str, torch.Tensor] | None:
    """The thinker's state dict with LoRA folded in and peft's names undone; None when there is no LoRA."""
    layers = {name: m for name, m in thinker.named_modules() if isinstance(m, LoraLayer)}
    if not layers:
        return None
    state = {}
    for key, value in thinker.state_dict().items():
        if "lora_" in key:
            continue
        owner = key.rsplit(".base_layer.", 1)[0] if ".base_layer." in key else None
        if owner is not None and owner in layers and key.endswith(".base_layer.weight"):
            layer = layers[owner]
            delta = sum(layer.get_delta_weight(a) for a in layer.active_adapters)
            value = value + delta.to(value.dtype)
        state[key.replace(".base_layer.", ".")] = value.detach().clone()
    return state
