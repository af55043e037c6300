"""The three terms of the LatentOmni objective (paper Eq. 4-7). Pure functions on tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def text_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 6: mean cross-entropy over discrete target tokens. ``logits`` (N, V) and ``targets`` (N,) are the
    already-selected positions (text, trigger, answer) -- latent slots, the inserted stop token and the
    prompt never reach this function."""
    if targets.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), targets)


def latent_loss(predicted: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Eq. 5: (1/K) sum_k ||z_k - a_k||_2^2, averaged over every latent of every block in the batch.

    The squared norm is summed over the hidden dimension (not averaged), as in the paper; this is why
    λ1 is small (0.005) at d = 3584.
    """
    if predicted.numel() == 0:
        return predicted.sum() * 0.0
    return (predicted.float() - anchors.float()).pow(2).sum(-1).mean()


def sync_loss(visual: torch.Tensor, audio: torch.Tensor, log_temperature: torch.Tensor) -> torch.Tensor:
    """Eq. 4: symmetric InfoNCE between time-aligned visual and audio features, per block.

    ``visual`` and ``audio`` are (N, T, d): N blocks, T time slices each. Row t of a block's visual and audio
    features describe the same moment; the other slices of the same block (the same clip, other moments)
    are its negatives -- the sum over t' in Eq. 4 runs over the timestamps of one video, which also keeps
    each sample's loss independent of what else is in the batch. sim is cosine similarity and
    τ = exp(log_temperature) is learnable (clamped to [0.01, 10]). Returns the mean over blocks.
    """
    if visual.dim() == 2:
        visual, audio = visual.unsqueeze(0), audio.unsqueeze(0)
    n, t, _ = visual.shape
    if n == 0 or t < 2:
        return (visual.sum() + audio.sum()) * 0.0 + log_temperature * 0.0
    tau = log_temperature.exp().clamp(0.01, 10.0)
    v = F.normalize(visual.float(), dim=-1)
    a = F.normalize(audio.float(), dim=-1)
    logits = torch.bmm(v, a.transpose(1, 2)) / tau  # (N, T, T)
    target = torch.arange(t, device=v.device).repeat(n)
    v2a = F.cross_entropy(logits.reshape(n * t, t), target)
    a2v = F.cross_entropy(logits.transpose(1, 2).reshape(n * t, t), target)
    return 0.5 * (v2a + a2v)


def sync_pairs(
    visual_latents: torch.Tensor, audio_latents: torch.Tensor, num_slices: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group a block's (Kv, d) visual and (Ka, d) audio latents into ``num_slices`` time slices (the OSPE
    axis: visual i belongs to slice floor(i*T/Kv), audio j to floor(j*T/Ka)) and average within each slice.

    Works on a batch of blocks: inputs (B, Kv, d) and (B, Ka, d) give (B, T, d) each.
    """
    def group(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        slice_of = (torch.arange(n, device=x.device) * num_slices) // n
        onehot = F.one_hot(slice_of, num_slices).to(x.dtype)  # (n, T)
        summed = torch.einsum("bnd,nt->btd", x, onehot)
        return summed / onehot.sum(0).unsqueeze(-1)

    return group(visual_latents), group(audio_latents)
