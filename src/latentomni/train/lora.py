"""Optional LoRA on the language model (peft), saved merged so checkpoints stay plain thinker weights.

Adapters are injected into the unmodified text model with ``peft.inject_adapter_in_model``; the wrapper's
``save_pretrained`` folds them back (``model.wrapper.fold_lora``: W + scale * B A) so that any checkpoint --
LoRA or not -- loads with ``LatentOmniModel.from_pretrained`` and
``Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained``.
"""

from __future__ import annotations

from peft import LoraConfig, inject_adapter_in_model


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
