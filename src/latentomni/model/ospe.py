"""Omni-Sync Position Embedding (OSPE, paper Sec. 3.2, Eq. 3): rotary positions for latent slots.

A latent block occupies the K position ids ``p0 .. p0+K-1`` that K ordinary tokens would occupy, so every
token after the block keeps exactly the position the model family's ``get_rope_index`` gives it. Inside the
block, OSPE lays the Kv visual and Ka audio latents on one shared time axis spanning those K ids -- on
TMRoPE's time scale (the backbone's ``position_ids_per_second``: 25 for Qwen2.5-Omni, 13 for Qwen3-Omni) the
block is a K/25-second (Qwen3-Omni: K/13-second) "revisited clip", see :func:`block_seconds` -- and each latent
takes the id of the moment its slice starts:

    visual latent i  ->  p0 + floor(i * K / Kv)
    audio  latent j  ->  p0 + floor(j * K / Ka)

so visual latent i and audio latent j that start at the same moment (i/Kv == j/Ka) share one temporal
rotary position (all three M-RoPE axes carry it, as for audio tokens). With K=40, Kv=32, Ka=8, audio
latent j shares its id with visual latent 4j, in every family. The offsets depend only on (K, Kv, Ka) -- never
on the cited window, which is unknown at inference, nor on the family -- so training and generation use the very
same positions. Qwen3-Omni's positions are floats (its ``get_rope_index`` returns them so); the offsets add to
them unchanged.

With OSPE off (the Table 4 ablation) the slots keep their sequential ids ``p0 + k``.
"""

from __future__ import annotations

import torch

from ..config import LatentConfig


def latent_position_offsets(cfg: LatentConfig) -> torch.Tensor:
    """Offset of each of the K slots from the block's first slot id, shape (K,), values in [0, K)."""
    k, kv, ka = cfg.num_latents, cfg.num_visual, cfg.num_audio
    if not cfg.ospe:
        return torch.arange(k)
    visual = (torch.arange(kv) * k) // max(kv, 1)
    audio = (torch.arange(ka) * k) // max(ka, 1)
    return torch.cat([visual, audio])[:k]


def block_seconds(cfg: LatentConfig, position_ids_per_second: float) -> float:
    """How long a latent block's shared time axis lasts on TMRoPE's scale: K ids at the backbone's ids per second
    (K=40: 1.6 s for Qwen2.5-Omni's 25, ~3.1 s for Qwen3-Omni's 13)."""
    return cfg.num_latents / float(position_ids_per_second)


def latent_modality(cfg: LatentConfig) -> torch.Tensor:
    """0 for visual slots, 1 for audio slots, shape (K,)."""
    return torch.cat([torch.zeros(cfg.num_visual, dtype=torch.long), torch.ones(cfg.num_audio, dtype=torch.long)])


def apply_ospe(position_ids: torch.Tensor, slot_index: torch.Tensor, cfg: LatentConfig) -> torch.Tensor:
    """Rewrite the positions of latent slots in a teacher-forced sequence.

    Args:
        position_ids: (3, B, L) from ``get_rope_index``, where the K slots of a block got sequential ids.
        slot_index: (B, L), k in [0, K) at latent slots, -1 elsewhere.
    Returns a new (3, B, L) tensor; non-slot positions are untouched.
    """
    is_slot = slot_index >= 0
    if not is_slot.any():
        return position_ids
    offsets = latent_position_offsets(cfg).to(position_ids.device)
    k = slot_index.clamp(min=0)
    block_start = position_ids - k.unsqueeze(0)  # sequential ids: slot k sits at p0 + k
    ospe = block_start + offsets[k].unsqueeze(0)
    return torch.where(is_slot.unsqueeze(0), ospe, position_ids)
