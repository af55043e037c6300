"""Controlled attention flow, one rule for the training forward and for generation.

``causal``: plain causal attention (with padding).

``through_latents``: once a sample has emitted its first ``<Unified_Latent>``, the tokens that follow may
reach the question's audio/video tokens only through latent states. A query is *blocked from media* when
it comes after the sample's first trigger and does not produce a latent state. Latent-producing queries
are the trigger tokens (their output is z_1 of the block) and the latent slots (their outputs are
z_2..z_K); they keep seeing the media, so the latents themselves stay grounded.
"""

from __future__ import annotations

import torch


def blocked_queries(is_trigger: torch.Tensor, is_slot: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: queries that must not attend to media keys, for a whole teacher-forced sequence."""
    seen_trigger = (is_trigger & attention_mask.bool()).long().cumsum(-1) > 0
    return seen_trigger & ~is_trigger & ~is_slot


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Bool (B, 1, Lq, Lk) -> additive float mask (0 where allowed, dtype min elsewhere); works for eager and
    SDPA attention alike."""
    zero = torch.zeros((), dtype=dtype, device=allowed.device)
    neg = torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=allowed.device)
    return torch.where(allowed, zero, neg)


def training_mask(
    attention_mask: torch.Tensor, media_keys: torch.Tensor, blocked: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """4D mask for a full sequence: causal, key padding, and no media keys for blocked queries."""
    _b, n = attention_mask.shape
    causal = torch.ones(n, n, dtype=torch.bool, device=attention_mask.device).tril()
    allowed = causal.unsqueeze(0) & attention_mask.bool().unsqueeze(1)
    allowed = allowed & ~(blocked.unsqueeze(2) & media_keys.unsqueeze(1))
    # Fully masked (padding) query rows would give NaNs in SDPA; let them see themselves.
    allowed = allowed | torch.eye(n, dtype=torch.bool, device=allowed.device).unsqueeze(0)
    return additive_mask(allowed.unsqueeze(1), dtype)


def chunk_mask(key_valid: torch.Tensor, media_keys: torch.Tensor, blocked: torch.Tensor, dtype: torch.dtype):
    """4D mask (B, 1, Q, Lk) for a chunk of Q queries fed after ``Lk - Q`` cached keys: causal inside the
    chunk, key validity (B, Lk), and no media keys (B, Lk) for blocked queries (B, Q). Generation feeds its
    prompt (one chunk) and then one query per step (Q = 1) through it, and the training rollout feeds each
    text span between latent blocks as one chunk, so both apply the same rule."""
    q, n = blocked.shape[1], key_valid.shape[1]
    past = n - q
    query_at = torch.arange(past, n, device=key_valid.device)
    causal = torch.arange(n, device=key_valid.device).unsqueeze(0) <= query_at.unsqueeze(1)  # (Q, Lk)
    allowed = causal.unsqueeze(0) & key_valid.bool().unsqueeze(1)
    allowed = allowed & ~(blocked.unsqueeze(2) & media_keys.bool().unsqueeze(1))
    # A padding query with no valid key would give NaNs in SDPA; let it see itself (as training_mask does).
    allowed = allowed | (torch.arange(n, device=key_valid.device).unsqueeze(0) == query_at.unsqueeze(1))
    return additive_mask(allowed.unsqueeze(1), dtype)
