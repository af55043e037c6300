"""Latent diagnostics (issue 17): what the model's own latent states hold, measured on collated batches.

Training, ``eval`` and the demo all call the same :class:`LatentDiagnostics` accumulator: feed it teacher-
forced ``latent``-variant batches (``data.collate.collate`` of samples with latent blocks) with :meth:`add`
and, when the caller generated replies, the blocks each reply decoded with :meth:`add_generation`; then
:meth:`result` gives a flat dict of floats, ready for ``results.json`` and TensorBoard:

* ``latent/trigger_rate``, ``latent/blocks_per_reply``: share of generated replies with a latent block, and
  blocks per reply (from generation only);
* ``latent/fidelity_cos``, ``latent/fidelity_rse``: cosine and relative squared error ||z-a||^2/||a||^2 of
  the *decoded* latents (the states decoding feeds back, :meth:`LatentOmniModel.rollout_slot_states`, for
  the teacher text up to each trigger) to the cited window's anchors, mean over latents; the
  ``_teacher`` variants use the teacher-forced states (anchors at the slots) -- the gap is the exposure gap;
* ``latent/retrieval``: share of blocks whose cited segment's anchor set is the nearest (mean cosine over
  the K slots) to the decoded latents among all segments of the clip; ``latent/retrieval_chance`` its
  chance level (mean over blocks of 1/segments); ``latent/retrieval_trigger``: the same for the trigger's
  state alone (slot 0, the state that has to *find* the segment); ``latent/retrieval_teacher`` for the
  teacher-forced states;
* ``latent/value_anchors``, ``latent/value_own``, ``latent/value_other``, ``latent/value_zeros``: text
  loss (nats per token) of the target tokens after each sample's first block with the slots holding (a)
  the anchors, (b) the model's own decoded states, (c) another segment's anchors (the next segment of the
  same clip, or another block of the batch when the clip has one segment), (d) zeros;
* ``latent/blocks``, ``latent/latents``, ``latent/value_tokens``: how many items the means are over.

The clip's segments come from the batch's segment table (``segment_windows``, ``block_segment``, built by
``collate`` from ``meta.segments``); a sample without it knows only its cited windows, so its retrieval is
among those.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from .losses import IGNORE_INDEX

PREFIX = "latent/"


class LatentDiagnostics:
    """Accumulates the diagnostics over batches (sums and counts, so the result does not depend on how
    the samples were batched); :meth:`result` returns the means."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, float] = defaultdict(float)

    def _add(self, name: str, total: float, count: float) -> None:
        self.sums[name] += float(total)
        self.counts[name] += float(count)

    def add_generation(self, num_blocks: Iterable[int]) -> None:
        """Latent blocks decoded per generated reply (``GenerationOutput.num_blocks``)."""
        blocks = [int(n) for n in num_blocks]
        self._add("trigger_rate", sum(n > 0 for n in blocks), len(blocks))
        self._add("blocks_per_reply", sum(blocks), len(blocks))

    @torch.no_grad()
    def add(self, model, batch: dict, own: torch.Tensor | None = None) -> None:
        """Measure a teacher-forced ``latent`` batch. ``own`` (n_slots, d) are the states at the slots that
        stand for the model's own latents; by default those decoding computes
        (:meth:`LatentOmniModel.rollout_slot_states`)."""
        if not bool((batch["slot_index"] >= 0).any()):
            return
        k = model.latent.num_latents
        media: dict = {}
        hidden, anchors, _ = model.teacher_forced_hidden(batch, media_out=media)
        dev = hidden.device
        bank = model.segment_anchors(batch, media["videos"], media["audios"]).to(dev).float()
        cited = batch["block_segment"].to(dev)
        seg_clip = batch["segment_clip"].to(dev)
        flat = anchors.reshape(-1, anchors.shape[-1]).float()
        own = (model.rollout_slot_states(batch) if own is None else own).to(dev).float()
        teacher = hidden[:, :-1][(batch["slot_index"] >= 0)[:, 1:].to(dev)].float()
        n_blocks = anchors.shape[0]

        for tag, z in (("", own), ("_teacher", teacher)):
            self._add(f"fidelity_cos{tag}", F.cosine_similarity(z, flat, dim=-1).sum(), z.shape[0])
            rse = (z - flat).pow(2).sum(-1) / flat.pow(2).sum(-1).clamp_min(1e-12)
            self._add(f"fidelity_rse{tag}", rse.sum(), z.shape[0])
            zb = z.reshape(n_blocks, k, -1)
            self._add(f"retrieval{tag}", _retrieved(zb, bank, cited, seg_clip).sum(), n_blocks)
        self._add("retrieval_trigger", _retrieved(own.reshape(n_blocks, k, -1)[:, :1], bank[:, :1], cited,
                                                  seg_clip).sum(), n_blocks)
        same_clip = seg_clip[cited].unsqueeze(1) == seg_clip.unsqueeze(0)  # (n_blocks, S)
        self._add("retrieval_chance", (1.0 / same_clip.sum(1).float()).sum(), n_blocks)
        self._add("blocks", n_blocks, 1)
        self._add("latents", own.shape[0], 1)

        other = bank[_other_segment(cited, seg_clip, batch["block_owner"].to(dev))].reshape_as(flat)
        fills = {"anchors": flat, "own": own, "other": other, "zeros": torch.zeros_like(flat)}
        select = _after_first_block(batch, model.token_ids.end).to(dev)
        target = batch["labels"][:, 1:].to(dev)[select]
        for name, fill in fills.items():
            h, _, _ = model.teacher_forced_hidden(batch, slot_inputs=fill.to(hidden.dtype))
            ce = F.cross_entropy(model.thinker.lm_head(h[:, :-1][select]).float(), target, reduction="sum")
            self._add(f"value_{name}", ce, target.numel())
        self._add("value_tokens", target.numel(), 1)

    def result(self) -> dict[str, float]:
        """Means as ``latent/<name>`` floats; counts (``blocks``, ``latents``, ``value_tokens``) as totals.
        Names with nothing measured are left out."""
        totals = {"blocks", "latents", "value_tokens"}
        out = {}
        for name in sorted(self.sums):
            if name in totals:
                out[PREFIX + name] = self.sums[name]
            elif self.counts[name]:
                out[PREFIX + name] = self.sums[name] / self.counts[name]
        return out


def diagnose(model, batches: Iterable[dict], num_blocks: Iterable[int] | None = None) -> dict[str, float]:
    """The diagnostics of teacher-forced ``latent`` batches (on the model's device) and, when given, of the
    latent blocks each generated reply decoded (``GenerationOutput.num_blocks``), as flat ``latent/*`` floats.

    The one call for ``eval``'s results.json and the demo: encode the samples with latent blocks
    (``SampleEncoder.encode(..., variant="latent")``, ``collate``, ``batch_to``) and pass the batches. The
    model is put in eval mode for the measurement and left as it was.
    """
    diag = LatentDiagnostics()
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            diag.add(model, batch)
    finally:
        model.train(was_training)
    if num_blocks is not None:
        diag.add_generation(num_blocks)
    return diag.result()


def _retrieved(z: torch.Tensor, bank: torch.Tensor, cited: torch.Tensor, seg_clip: torch.Tensor) -> torch.Tensor:
    """(n_blocks,) bool: is the cited segment the nearest (mean cosine over slots) among its clip's?"""
    zn, bn = F.normalize(z, dim=-1), F.normalize(bank, dim=-1)
    score = torch.einsum("bkd,skd->bs", zn, bn) / z.shape[1]  # (n_blocks, S)
    score = score.masked_fill(seg_clip[cited].unsqueeze(1) != seg_clip.unsqueeze(0), float("-inf"))
    return score.argmax(1) == cited


def _other_segment(cited: torch.Tensor, seg_clip: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """Per block, a segment other than the cited one: the clip's next segment (cyclic), or, for a clip of
    one segment, the cited segment of the batch's next block of another sample (itself when there is none)."""
    out = []
    for b, s in enumerate(cited.tolist()):
        mates = (seg_clip == seg_clip[s]).nonzero().flatten().tolist()
        if len(mates) > 1:
            out.append(mates[(mates.index(s) + 1) % len(mates)])
            continue
        others = [int(cited[j]) for j in range(len(cited)) if owner[j] != owner[b] and int(cited[j]) != s]
        out.append(others[0] if others else s)
    return torch.tensor(out, dtype=torch.long, device=cited.device)


def _after_first_block(batch: dict, end_id: int) -> torch.Tensor:
    """(B, L-1) bool over next-token targets: discrete targets after each sample's first ``</Unified_Latent>``."""
    ids, labels = batch["input_ids"], batch["labels"]
    is_end = ids == end_id
    seen = is_end.long().cumsum(1) > 0  # at or after the first end token
    # target t predicts token t+1; keep it when token t+1 comes after the end token
    return seen[:, :-1] & (labels[:, 1:] != IGNORE_INDEX)
