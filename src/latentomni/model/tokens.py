"""The latent-mode special tokens and their ids, added to a tokenizer and an embedding table.

``<Unified_Latent>`` (u, the trigger the model emits), ``</Unified_Latent>`` (u', inserted after K latents)
and ``<|latent|>`` (a placeholder for a latent slot in teacher-forced training; its embedding is never
used because the slot's input is replaced by an anchor).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LATENT_START = "<Unified_Latent>"
LATENT_END = "</Unified_Latent>"
LATENT_SLOT = "<|latent|>"
SPECIAL_TOKENS = (LATENT_START, LATENT_END, LATENT_SLOT)


@dataclass(frozen=True)
class LatentTokenIds:
    start: int
    end: int
    slot: int

    @classmethod
    def from_tokenizer(cls, tokenizer) -> LatentTokenIds:
        ids = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
        unk = getattr(tokenizer, "unk_token_id", None)
        if any(i is None or i == unk for i in ids):
            raise ValueError(
                f"tokenizer lacks the latent tokens {SPECIAL_TOKENS}; load the model with "
                "LatentOmniModel.from_base(...) which adds them"
            )
        return cls(*ids)


def add_latent_tokens(tokenizer, thinker) -> LatentTokenIds:
    """Add the tokens to ``tokenizer`` and grow ``thinker``'s input and output embeddings.

    New rows start at the mean of the existing rows (input and output tables separately). The mean keeps
    the new tokens inside the distribution the network has seen, so their logits start near the average
    logit instead of at an arbitrary scale (Hewitt, 2021) -- the trigger can then be learned without
    first undoing a bad initialisation.
    """
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    ids = LatentTokenIds.from_tokenizer(tokenizer)
    old = thinker.get_input_embeddings().weight.shape[0]
    new = max(len(tokenizer), old)
    if new > old:
        thinker.resize_token_embeddings(new, mean_resizing=False)
        with torch.no_grad():
            inp = thinker.get_input_embeddings().weight
            inp[old:] = inp[:old].mean(0, keepdim=True)
            out = thinker.get_output_embeddings()
            if out is not None and out.weight.data_ptr() != inp.data_ptr():
                out.weight[old:] = out.weight[:old].mean(0, keepdim=True)
    return ids
