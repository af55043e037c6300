"""Optional LoRA on the language model (peft), saved merged so checkpoints stay plain thinker weights.

Adapters are injected into the unmodified text model with ``peft.inject_adapter_in_model``; the wrapper's
``save_pretrained`` folds them back (``model.wrapper.fold_lora``: W + scale * B A) so that any checkpoint --
LoRA or not -- loads with ``LatentOmniModel.from_pretrained`` and
``Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained``.
"""

from __future__ import annotations

from peft import LoraConfig, inject_adapter_in_model

from ..model.wrapper import plain_key


def add_lora(model, section) -> None:
    """Inject LoRA into the text model: ``target_modules`` (nn.Linear layers) and ``target_parameters`` (fused
    expert parameters of a MoE block); the adapted base weights are frozen, the adapters train."""
    allowed = model.backbone.lora_expert_parameters
    unknown = [t for t in section.target_parameters if t not in allowed]
    if unknown:
        raise ValueError(f"training.lora.target_parameters: {unknown} are not fused expert parameters of the "
                         f"{model.backbone.family} text model (it has: {list(allowed) or 'none'})")
    cfg = LoraConfig(r=section.r, lora_alpha=section.alpha, lora_dropout=section.dropout,
                     target_modules=list(section.target_modules),
                     target_parameters=list(section.target_parameters) or None)
    lm = model.thinker.model.language_model
    inject_adapter_in_model(cfg, lm)
    for name, p in lm.named_parameters():
        if "lora_" in name:
            p.requires_grad_(True)
        elif p.requires_grad and (any(t in name for t in section.target_modules)
                                  or any(plain_key(name).endswith(t) for t in section.target_parameters)):
            p.requires_grad_(False)  # the adapted base weights stay frozen; other LLM weights follow freeze_llm
