"""Stage 3 of the tiny base: cross-modal grounding from two dense targets.

Every demo question starts with a lookup: find the moment a text phrase names ("while the high tone
played") and read the *other* modality there. The language-model loss alone never taught the tiny base
either half (``benchmarks/base_skills.py``): after 3,000 steps of open cross-modal probes on 3,000 clips its
held-out answers were no better than with the named modality zeroed, and the attention of its upper layers
on the named segment stayed at chance. Like stage 0, this stage gives each half a direct target:

* **retrieval** -- at every answer position of an open cross-modal probe, head 0 of each layer in
  ``layers`` must put its attention on the audio tokens of the named segment (loss: ``-log`` of the mass
  there). Audio tokens, because they come last in each TMRoPE chunk, so they alone can see both
  modalities of their moment; no parameters are added.
* **binding** -- linear heads on ``bind_layer`` read from every audio token what is on screen at its time
  (colour, shape, count, motion). The heads are thrown away afterwards.

Both are auxiliary to the usual next-token loss on the probes' answers. Each phase draws its batches from
named pools of samples (open probes, perception data, ...; see ``GROUNDING_STAGE`` in :mod:`.base`), so
that captioning is not forgotten and further phases are a change of data, not of code.

Measured on the 200 held-out clips of a 3,000-clip world (throwaway scripts with the same losses): after
1,500 steps of retrieval alone, head 0 put 0.998 of its audio attention on the segment a *sound* names
(0.36 if it ignored the question), yet the answers still did not read the other modality (what is on
screen: 0.18 exact, 0.14 with the audio zeroed), because the audio tokens did not carry it. 900 more steps
with binding: 0.74 exact against 0.14 with the audio zeroed and 0.01 with the video zeroed. Moments named
by a colour or a shape were not learned (attention share at chance; "what is heard" answered as well with
the video zeroed): finding them needs the binding first, and the retrieval phase runs without it.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import torch
from torch import nn

from ..data.collate import SampleEncoder, collate
from ..data.schema import TrainingSample
from .encoders import (
    AUDIO_TOKENS_PER_SECOND,
    IGNORE,
    VISUAL_CLASSES,
    fit_readout,
    readout_loss,
    segment_per_audio_token,
)

log = logging.getLogger(__name__)


class BindingHeads(nn.Module):
    """Audio token -> the visual attributes on screen at its time (and, for the diagnostic script, video time
    step -> the sound at its time)."""

    def __init__(self, hidden: int, n_sounds: int | None = None):
        super().__init__()
        self.visual = nn.ModuleDict({a: nn.Linear(hidden, len(v)) for a, v in VISUAL_CLASSES.items()})
        self.sound = nn.Linear(hidden, n_sounds) if n_sounds else None


def audio_binding_labels(record: dict, n_audio: int) -> torch.Tensor:
    """(n_audio, len(VISUAL_CLASSES)) class indices of what is on screen at each audio token's time."""
    return torch.tensor([[VISUAL_CLASSES[a].index(s[a]) if s else IGNORE for a in VISUAL_CLASSES]
                         for s in segment_per_audio_token(record["segments"], n_audio)], dtype=torch.long)


def named_audio_positions(input_ids: torch.Tensor, audio_token_id: int, window: tuple[float, float]) -> torch.Tensor:
    """Sequence positions of the audio tokens inside ``window`` (seconds): the j-th audio token of a clip
    covers [j/25, (j+1)/25) s, the same for every chunk layout because TMRoPE keeps them in time order."""
    positions = (input_ids == audio_token_id).nonzero().squeeze(1)
    j = torch.arange(len(positions), device=input_ids.device)
    lo, hi = round(window[0] * AUDIO_TOKENS_PER_SECOND), round(window[1] * AUDIO_TOKENS_PER_SECOND)
    return positions[(j >= lo) & (j < hi)]


def grounding_losses(model, heads: BindingHeads, batch: dict, samples: list[TrainingSample],
                     records: dict[str, dict], layers: tuple[int, ...], bind_layer: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """(next-token CE, retrieval loss, binding loss, binding (correct, counted) per attribute) of one batch.

    ``model`` must be loaded with ``attn_implementation="eager"`` (the retrieval target reads attention
    weights). Samples without ``meta["evidence"]`` get only the CE and binding terms; ``records`` maps a
    clip id to its ground-truth record (clips not in it get no binding labels)."""
    embeds, _, _ = model.embed_prompt(batch)
    out = model.thinker.model.language_model(
        inputs_embeds=embeds, attention_mask=batch["attention_mask"], position_ids=model.rope_positions(batch),
        use_cache=False, output_attentions=True, output_hidden_states=True)
    target = batch["labels"][:, 1:]
    sel = target != IGNORE
    ce = nn.functional.cross_entropy(model.thinker.lm_head(out.last_hidden_state[:, :-1][sel]).float(), target[sel])
    audio_id = model.config.audio_token_id
    retrieval, bound, labels = [], [], []
    for i, sample in enumerate(samples):
        ids = batch["input_ids"][i]
        record = records.get(sample.meta.get("clip", ""))
        if record is not None and (ids == audio_id).any():
            positions = (ids == audio_id).nonzero().squeeze(1)
            bound.append(out.hidden_states[bind_layer][i, positions])
            labels.append(audio_binding_labels(record, len(positions)))
        window = sample.meta.get("evidence")
        if window is None:
            continue
        inside = named_audio_positions(ids, audio_id, tuple(window))
        queries = sel[i].nonzero().squeeze(1)  # the positions that predict answer tokens
        for layer in layers:
            mass = out.attentions[layer][i, 0][queries][:, inside].sum(-1)
            retrieval.append(-(mass + 1e-6).log().mean())
    zero = out.last_hidden_state.sum() * 0.0
    retrieval_loss = torch.stack(retrieval).mean() if retrieval else zero
    if not bound:
        return ce, retrieval_loss, zero, {}
    audio, lab = torch.cat(bound), torch.cat(labels)
    bind_loss, stats = readout_loss([(a, head(audio), lab[:, k]) for k, (a, head) in enumerate(heads.visual.items())])
    return ce, retrieval_loss, bind_loss, stats


def pretrain_grounding(model, world_dir: str | Path, pools: dict[str, list[TrainingSample]],
                       records: dict[str, dict], media, phases: list[dict], layers: tuple[int, ...] = (2, 3),
                       bind_layer: int = 2, lr: float = 1e-3, seed: int = 0) -> dict:
    """Train the LLM and the audio tower (vision frozen) on batches drawn from ``pools`` (named sample lists;
    samples with ``meta["evidence"]`` get the retrieval target). Each phase is ``{"steps", "mix",
    "bind_weight"}``, where ``mix`` says how many samples of each pool go into a batch: the measured recipe
    first learns retrieval alone, then adds binding."""
    t0 = time.time()
    inner = model.thinker.model
    for p in inner.visual.parameters():
        p.requires_grad_(False)
    torch.manual_seed(seed)
    heads = BindingHeads(model.config.text_config.hidden_size)
    encoder = SampleEncoder.for_model(model, media, media_cache_size=4096)
    rng, world_dir, report = random.Random(seed), Path(world_dir), []
    pad = model.processor.tokenizer.pad_token_id
    for phase in phases:
        missing = [name for name, k in phase["mix"].items() if k and len(pools.get(name, [])) < k]
        if missing:
            raise ValueError(f"grounding phase {phase}: pools {missing} are missing or smaller than their share of "
                             f"a batch (pools: { {n: len(v) for n, v in pools.items()} })")
    model.train()
    for n, phase in enumerate(phases):
        mix, weight, last = phase["mix"], phase["bind_weight"], {}

        def step(mix=mix, weight=weight, last=last) -> torch.Tensor:
            samples = [s for name, k in mix.items() if k for s in rng.sample(pools[name], k)]
            batch = collate([encoder.encode(s, world_dir, variant="text_cot") for s in samples], pad, "right")
            ce, ret, bind, stats = grounding_losses(model, heads, batch, samples, records, layers, bind_layer)
            last.update(ce=ce.item(), retrieval=ret.item(), binding=bind.item(),
                        **{f"bind_acc_{a}": c / max(n, 1) for a, (c, n) in stats.items()})
            return ce + ret + weight * bind

        params = [p for p in model.parameters() if p.requires_grad] + (list(heads.parameters()) if weight else [])
        fit_readout(params, step, phase["steps"], lr, f"grounding phase {n + 1}")
        report.append({**phase, "last_losses": {k2: round(v, 3) for k2, v in last.items()}})
    model.eval()
    log.info("grounding done in %.0f s", time.time() - t0)
    return {"phases": report, "minutes": round((time.time() - t0) / 60, 1)}
