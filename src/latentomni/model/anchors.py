"""Latent anchors (paper Sec. 3.4): the cited segment's own encoder features, compressed without parameters.

For a cited window ``[t0, t1)`` we take the model's visual and audio encoder outputs in LLM space (the
embeddings the thinker already scattered into the prompt -- nothing is encoded twice) whose time span
overlaps the window, ordered by time, and compress them to Kv visual and Ka audio anchors by L2-norm-
weighted pooling over contiguous chunks:

    chunk_k = [floor(k N / M), max(floor((k+1) N / M), floor(k N / M) + 1))     k = 0..M-1
    a_k     = sum_{i in chunk_k} w_i x_i / sum_{i in chunk_k} w_i,   w_i = ||x_i||_2

N is the number of tokens in the window and M the number of anchors. Chunks are contiguous in time order,
so anchor k summarises the k-th time slice of the window; a token with a large norm (a salient transient
event) dominates its slice instead of being averaged away. When N < M a chunk holds the single token
``floor(k N / M)``, so tokens repeat and every anchor is still defined. Video tokens are ordered
time-major (frames, then raster order), so when a window has fewer frames than anchors the chunks
subdivide a frame spatially. Anchors are detached: they are targets.

The features pooled are the LLM-space ones the prompt embeddings hold -- for Qwen3-Omni the vision merger's
output, not its DeepStack features (see :mod:`.wrapper` for why). When an audio token covers which seconds is
the backbone's fact (:meth:`.backbone.Backbone.audio_token_spans`: 40 ms tokens for Qwen2.5-Omni, 13 tokens per
1-second window for Qwen3-Omni).
"""

from __future__ import annotations

import torch

from .backbone import Backbone, Qwen25Omni


def pooling_weights(features: torch.Tensor, num_anchors: int) -> torch.Tensor:
    """The (M, N) matrix W with anchors = W @ features (rows sum to 1)."""
    n = features.shape[0]
    if n == 0:
        raise ValueError("cannot pool anchors from an empty window")
    k = torch.arange(num_anchors, device=features.device)
    lo = (k * n) // num_anchors
    hi = torch.maximum(((k + 1) * n) // num_anchors, lo + 1)
    idx = torch.arange(n, device=features.device)
    member = (idx.unsqueeze(0) >= lo.unsqueeze(1)) & (idx.unsqueeze(0) < hi.unsqueeze(1))
    w = member.to(features.dtype) * features.detach().float().norm(dim=-1).to(features.dtype).unsqueeze(0)
    return w / w.sum(dim=1, keepdim=True).clamp_min(torch.finfo(features.dtype).tiny)


def pool_anchors(features: torch.Tensor, num_anchors: int) -> torch.Tensor:
    """L2-norm-weighted pooling of (N, d) time-ordered features to (num_anchors, d); detached."""
    features = features.detach()
    return pooling_weights(features, num_anchors) @ features


def video_token_window(
    grid_thw: torch.Tensor, second_per_grid: float, spatial_merge_size: int, t0: float, t1: float
) -> torch.Tensor:
    """Indices (into this video's LLM tokens) of the tokens whose temporal patch overlaps ``[t0, t1)``."""
    t, h, w = (int(x) for x in grid_thw)
    per_t = (h // spatial_merge_size) * (w // spatial_merge_size)
    starts = torch.arange(t, dtype=torch.float64) * second_per_grid
    hit = (starts < t1) & (starts + second_per_grid > t0)
    frames = torch.nonzero(hit).flatten()
    return (frames.unsqueeze(1) * per_t + torch.arange(per_t)).flatten()


def audio_token_window(num_tokens: int, t0: float, t1: float, backbone: Backbone | None = None) -> torch.Tensor:
    """Indices of audio tokens overlapping ``[t0, t1)``, their spans given by ``backbone`` (Qwen2.5-Omni's
    1/25 s tokens when None)."""
    starts, ends = (backbone or Qwen25Omni(None)).audio_token_spans(num_tokens)
    hit = (starts < t1) & (ends > t0)
    return torch.nonzero(hit).flatten()
