"""The three terms of the LatentOmni objective (paper Eq. 4-7). Pure functions on tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import torch
import torch.nn.functional as F

from ..config import CenterAnchors, LatentLossKind, SyncNegatives

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


@dataclass
class SegmentBank:
    """The anchors a ``contrastive`` latent is told apart from: every segment of the batch's clips.

    ``anchors`` (S, K, d) are each segment's K anchors; ``clip`` (S,) the clip each belongs to. A latent
    at slot k of a block citing segment s has ``bank.anchors[s, k]`` as its positive and every other row's
    slot k (the clip's other segments, all segments of the batch's other clips) as negatives.
    """

    anchors: torch.Tensor
    clip: torch.Tensor


def latent_loss_items(predicted: torch.Tensor, anchors: torch.Tensor, kind: LatentLossKind = "mse_sum", *,
                      slot: torch.Tensor | None = None, segment: torch.Tensor | None = None,
                      bank: SegmentBank | None = None, temperature: float = 0.1,
                      center: CenterAnchors = "off") -> torch.Tensor:
    """Per-latent values of the latent loss (n,), one per latent state; the loss is their mean, so its item
    count is the number of latent states whatever ``kind`` is (``LatentOmniModel.loss_items``).

    * ``mse_sum``: ||z - a||^2 summed over the hidden dimension, Eq. 5 literally;
    * ``mse_mean``: the same averaged over the hidden dimension (the official training code);
    * ``cosine``: 1 - cos(z, a), blind to the norm (states ~16, anchors ~18-60 in the tiny model);
    * ``cosine_norm``: cosine plus ((||z|| - ||a||) / ||a||)^2, so the norm is matched too;
    * ``contrastive``: InfoNCE of z against its own anchor, with the same slot's anchors of every other
      segment in ``bank`` as negatives: a direction that all segments share does not lower it, only
      segment-specific content does. ``slot`` (n,) gives each latent's k, ``segment`` (n,) its cited row of
      ``bank``; similarity is cosine over ``temperature``. ``center`` subtracts the mean anchor of the
      slot (over the batch's segments, or over the latent's own clip's) from latents and anchors alike. With
      no other segment in the bank the loss is 0 (nothing to tell apart). It depends on what else is in the
      batch (the negatives), so unlike the others it is not invariant to how a global batch is split.
    """
    z, a = predicted.float(), anchors.float()
    if kind == "mse_sum":
        return (z - a).pow(2).sum(-1)
    if kind == "mse_mean":
        return (z - a).pow(2).mean(-1)
    if kind in ("cosine", "cosine_norm"):
        loss = 1.0 - F.cosine_similarity(z, a, dim=-1)
        if kind == "cosine_norm":
            na = a.norm(dim=-1).clamp_min(1e-6)
            loss = loss + ((z.norm(dim=-1) - na) / na).pow(2)
        return loss
    if kind == "contrastive":
        if bank is None or slot is None or segment is None:
            raise ValueError("latent_loss 'contrastive' needs the batch's segment anchors (bank), each latent's "
                             "slot and cited segment; collate the batch with data.collate.collate")
        return _contrastive_items(z, slot, segment, bank, temperature, center)
    raise ValueError(f"unknown latent_loss {kind!r}; choose from {get_args(LatentLossKind)}")


def _contrastive_items(z: torch.Tensor, slot: torch.Tensor, segment: torch.Tensor, bank: SegmentBank,
                       temperature: float, center: CenterAnchors) -> torch.Tensor:
    cand = bank.anchors.float().detach()  # (S, K, d): targets, never trained
    if z.shape[0] == 0:
        return z.sum(-1)
    if center != "off":
        if center == "batch":
            mean = cand.mean(0, keepdim=True).expand_as(cand)  # (S, K, d)
        else:
            onehot = F.one_hot(bank.clip, int(bank.clip.max()) + 1).to(cand.dtype)  # (S, C)
            per_clip = torch.einsum("sc,skd->ckd", onehot, cand) / onehot.sum(0)[:, None, None]
            mean = per_clip[bank.clip]
        z = z - mean[segment, slot]
        cand = cand - mean
    zn = F.normalize(z, dim=-1)
    cn = F.normalize(cand, dim=-1)
    sims = torch.einsum("nd,skd->nsk", zn, cn)  # (n, S, K)
    logits = sims.gather(2, slot.view(-1, 1, 1).expand(-1, sims.shape[1], 1)).squeeze(2) / temperature
    return F.cross_entropy(logits, segment, reduction="none")


def sync_loss(visual: torch.Tensor, audio: torch.Tensor, log_temperature: torch.Tensor,
              negatives: SyncNegatives = "window") -> torch.Tensor:
    """Eq. 4: symmetric InfoNCE between time-aligned visual and audio features, per block.

    ``visual`` and ``audio`` are (N, T, d): N blocks, T time slices each. Row t of a block's visual and audio
    features describe the same moment. With ``negatives="window"`` the other slices of the same block (the
    same clip, other moments) are its negatives -- the sum over t' in Eq. 4 runs over the timestamps of one
    video, which also keeps each sample's loss independent of what else is in the batch. Neighbouring audio
    slices of one window are near-identical, so this sits at chance (ln T); ``negatives="batch"`` adds every
    slice of the batch's other blocks (other windows, other clips) as negatives, which makes the loss depend
    on the batch (not invariant to how a global batch is split). sim is cosine similarity and
    τ = exp(log_temperature) is learnable (clamped to [0.01, 10]). Returns the mean over blocks (every block
    has T rows, so the mean over rows is the mean over blocks).
    """
    if visual.dim() == 2:
        visual, audio = visual.unsqueeze(0), audio.unsqueeze(0)
    n, t, _ = visual.shape
    if n == 0 or (t < 2 and (negatives == "window" or n < 2)):
        return (visual.sum() + audio.sum()) * 0.0 + log_temperature * 0.0
    tau = log_temperature.exp().clamp(0.01, 10.0)
    v = F.normalize(visual.float(), dim=-1)
    a = F.normalize(audio.float(), dim=-1)
    if negatives == "batch":
        v, a = v.reshape(1, n * t, -1), a.reshape(1, n * t, -1)
        n, t = 1, n * t
    elif negatives != "window":
        raise ValueError(f"unknown sync_negatives {negatives!r}; choose from {get_args(SyncNegatives)}")
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
