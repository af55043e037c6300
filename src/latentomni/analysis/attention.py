"""The AV token attention ratio (paper Fig. 1, right) and the generation trace it is read from.

Definition. Generation (:func:`latentomni.model.generate.generate`) feeds one input per decoding step; step
``s`` feeds generated position ``s`` (``sequences[:, s]``: a text token, the trigger ``<Unified_Latent>``, a
latent state z_k, or ``</Unified_Latent>``) and its query attends to the prompt and to every generated
position up to ``s``. For step ``s`` and layer ``l`` let ``a_{s,l}`` be that query's attention row averaged over
heads. For a set of layers (one chosen layer, or all of them) ``a_s`` is the mean of those rows. The mass of
``a_s`` on a kind of key is the sum of its entries over the keys of that kind, divided by the row's total
(which is 1 for softmax rows; dividing keeps reduced-precision rows honest)::

    video_s  = sum_{j : key j is a video token of the question}  a_s[j] / sum_j a_s[j]
    audio_s  = sum_{j : key j is an audio token of the question} a_s[j] / sum_j a_s[j]
    latent_s = sum_{j : the input at key j was a latent state}   a_s[j] / sum_j a_s[j]
    av_s     = video_s + audio_s          (the AV token attention ratio of step s)
    text_s   = 1 - av_s - latent_s        (everything else: prompt text, special tokens, generated text)

Steps are split by what they feed: *latent steps* feed the trigger or a latent state (the queries that
produce z_1..z_K, the ones :mod:`latentomni.model.masks` lets see the media under ``through_latents``);
*text steps* feed every other generated token. Steps after a sample has fed its end-of-turn token are
inactive (batch padding) and never counted. A sample's ratio for a step group is the mean over its steps;
a task type's ratio is the mean over its samples (each sample weighs the same, however long its reply).

Two caveats a reader of the numbers needs. The prefill step (the last prompt token's query, which picks the
first generated token) is not part of ``GenerationOutput.attentions`` and so not of any mean. Under
``attention_flow="through_latents"`` text steps after the first trigger cannot see the media at all, so
their AV ratio is 0 by construction; compare text-step ratios between models only under ``causal`` flow.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from latentomni.model.backbone import Backbone

# Key kinds (values of ``key_kinds``); padding is -1 and belongs to no kind.
PAD, TEXT, VIDEO, AUDIO, LATENT = -1, 0, 1, 2, 3
KEY_KIND_NAMES = ("text", "video", "audio", "latent")
# Step kinds (values of ``step_kinds``).
INACTIVE, TEXT_STEP, LATENT_STEP = -1, 0, 1
STEP_GROUPS = ("latent", "text", "all")

Layers = int | Sequence[int] | None
StepAttentions = Sequence[Sequence[torch.Tensor]]  # per step, per layer: (B, heads, kv_len)


# -- what each key and each step is ---------------------------------------------------------------------
def key_kinds(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, step_is_latent: torch.Tensor,
              video_token_id: int, audio_token_id: int) -> torch.Tensor:
    """(B, L + n_steps) kind of every key a decoding step can attend to.

    Prompt keys are video, audio or text tokens by id (padding is ``PAD``); generated key ``L + i`` holds
    the input of step ``i``: ``LATENT`` where that input was a latent state, ``TEXT`` otherwise (the trigger
    and ``</Unified_Latent>`` are tokens).
    """
    prompt = torch.full_like(prompt_ids, TEXT)
    prompt[prompt_ids == video_token_id] = VIDEO
    prompt[prompt_ids == audio_token_id] = AUDIO
    prompt[~prompt_mask.bool()] = PAD
    generated = torch.where(step_is_latent.to(prompt_ids.device), LATENT, TEXT).to(prompt.dtype)
    return torch.cat([prompt, generated], dim=1)


def step_kinds(fed_ids: torch.Tensor, step_is_latent: torch.Tensor, trigger_id: int,
               stop_ids: Iterable[int]) -> torch.Tensor:
    """(B, n_steps) ``LATENT_STEP`` where the step fed the trigger or a latent state, ``TEXT_STEP`` for every
    other generated input, ``INACTIVE`` from the step that fed an end-of-turn token on (the sample was done).

    ``fed_ids`` is ``sequences[:, :n_steps]``: step ``s`` fed ``sequences[:, s]``.
    """
    stops = torch.tensor(sorted(set(stop_ids)), dtype=fed_ids.dtype, device=fed_ids.device)
    latent = step_is_latent.to(fed_ids.device)
    stopped = (torch.isin(fed_ids, stops) & ~latent).long().cumsum(1) > 0
    kinds = torch.where(latent | (fed_ids == trigger_id), LATENT_STEP, TEXT_STEP)
    return kinds.masked_fill(stopped, INACTIVE)


# -- reducing attention rows --------------------------------------------------------------------------
def select_layers(n_layers: int, layers: Layers) -> list[int]:
    """Layer indices for ``layers``: None means all, an int one layer (negative counts from the top)."""
    chosen = list(range(n_layers)) if layers is None else [layers] if isinstance(layers, int) else list(layers)
    if not chosen:
        raise ValueError("layers is empty; give a layer index, a list of them, or None for all layers")
    bad = [i for i in chosen if not -n_layers <= i < n_layers]
    if bad:
        raise ValueError(f"layer(s) {bad} out of range for a model with {n_layers} layers")
    return [i % n_layers for i in chosen]


def mean_row(layer_rows: Sequence[torch.Tensor], layers: Layers = None) -> torch.Tensor:
    """(B, kv_len) one step's attention row averaged over heads and over the selected layers."""
    chosen = select_layers(len(layer_rows), layers)
    return torch.stack([layer_rows[i].float() for i in chosen]).mean(dim=(0, 2))


def head_mean(step_attentions: StepAttentions) -> list[tuple[torch.Tensor, ...]]:
    """The same per-step, per-layer structure with the heads averaged (a 1-head dim kept), on the CPU.

    Every quantity here averages over heads first, so a trace may keep only this: it is ``heads`` times
    smaller than what generation returns.
    """
    return [tuple(a.float().mean(dim=1, keepdim=True).cpu() for a in layer_rows) for layer_rows in step_attentions]


def kind_masses(step_attentions: StepAttentions, kinds: torch.Tensor, layers: Layers = None) -> torch.Tensor:
    """(B, n_steps, 4) fraction of each step's attention on text, video, audio and latent keys
    (``KEY_KIND_NAMES`` order), per the module docstring's definition."""
    out = []
    for s, layer_rows in enumerate(step_attentions):
        row = mean_row(layer_rows, layers)
        kv = row.shape[-1]
        if kv > kinds.shape[1]:
            raise ValueError(f"step {s} attends to {kv} keys but key_kinds covers {kinds.shape[1]}; "
                             "build key_kinds from the same prompt and generation")
        k = kinds[:, :kv].to(row.device)
        total = row.sum(-1).clamp_min(torch.finfo(row.dtype).tiny)
        out.append(torch.stack([(row * (k == kind)).sum(-1) / total for kind in (TEXT, VIDEO, AUDIO, LATENT)], -1))
    if not out:
        return torch.zeros(kinds.shape[0], 0, len(KEY_KIND_NAMES))
    return torch.stack(out, 1)


# -- summaries ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KindRatio:
    """Mean attention fractions over a group of steps (or, aggregated, over samples)."""

    n: int  # steps (per sample) or samples (aggregated) averaged
    av: float
    video: float
    audio: float
    latent: float
    text: float

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


def _ratio(masses: torch.Tensor) -> KindRatio | None:
    """Mean of (n, 4) per-step masses; None for no steps."""
    if masses.shape[0] == 0:
        return None
    text, video, audio, latent = (float(x) for x in masses.mean(0))
    return KindRatio(masses.shape[0], video + audio, video, audio, latent, text)


def group_mask(kinds: torch.Tensor, step_group: str) -> torch.Tensor:
    """Bool mask of the steps in ``step_group``: ``latent``, ``text`` or ``all`` (every active step)."""
    if step_group not in STEP_GROUPS:
        raise ValueError(f"unknown step group {step_group!r}; choose from {STEP_GROUPS}")
    return {"latent": kinds == LATENT_STEP, "text": kinds == TEXT_STEP, "all": kinds != INACTIVE}[step_group]


def summarize(masses: torch.Tensor, kinds: torch.Tensor) -> list[dict[str, KindRatio | None]]:
    """Per sample, the mean masses over its latent steps, its text steps and all its active steps."""
    kinds = kinds.to(masses.device)
    return [{g: _ratio(m[group_mask(k, g)]) for g in STEP_GROUPS} for m, k in zip(masses, kinds, strict=True)]


def attention_ratios(step_attentions: StepAttentions, key_kinds: torch.Tensor, step_kinds: torch.Tensor,
                     layers: Layers = None) -> list[dict[str, KindRatio | None]]:
    """The AV token attention ratio of Fig. 1 for each sample of a batch, split into latent, text and all
    steps: ``{"latent": KindRatio | None, "text": ..., "all": ...}`` (None where a sample has no such step).

    ``step_attentions`` is ``GenerationOutput.attentions`` (or its :func:`head_mean`); ``layers`` picks one
    layer, several, or (None) averages all of them.
    """
    return summarize(kind_masses(step_attentions, key_kinds, layers), step_kinds)


def aggregate(samples: Iterable[tuple[str | Sequence[str], dict[str, KindRatio | None]]],
              order: Sequence[str] = ()) -> dict[str, dict[str, KindRatio | None]]:
    """Per group (task type) and step group, the mean of the samples' ratios; ``KindRatio.n`` counts the
    samples that had such steps. A sample may name several groups (a multi-label tag) and counts once in
    each. Groups come in ``order`` first, then alphabetically; ``"all tasks"`` last pools every sample once."""
    by_group: dict[str, dict[str, list[KindRatio]]] = defaultdict(lambda: defaultdict(list))
    for groups, ratios in samples:
        names = [groups] if isinstance(groups, str) else list(dict.fromkeys(groups))
        for name in [*names, "all tasks"]:
            for step_group, r in ratios.items():
                if r is not None:
                    by_group[name][step_group].append(r)
            by_group[name].setdefault("all", [])
    names = [g for g in order if g in by_group] + sorted(set(by_group) - set(order) - {"all tasks"})
    if "all tasks" in by_group:
        names.append("all tasks")
    return {name: {sg: _mean_of(by_group[name].get(sg, [])) for sg in STEP_GROUPS} for name in names}


def _mean_of(ratios: list[KindRatio]) -> KindRatio | None:
    if not ratios:
        return None
    n = len(ratios)
    mean = {f: sum(getattr(r, f) for r in ratios) / n for f in ("av", "video", "audio", "latent", "text")}
    return KindRatio(n=n, **mean)


# -- the glue: one generation with its attentions -------------------------------------------------------
def force_trigger(trigger_id: int, at_step: int = 1) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """A logits processor that makes ``<Unified_Latent>`` the token picked at step ``at_step`` (once).

    An untrained (or tiny random) model never emits the trigger by itself, so its latent steps -- and the
    heatmaps drawn from them -- would not exist; forcing one block early gives them something to show. The
    latent states are still the model's own; only the decision to enter latent mode is imposed.
    """
    def process(step: int, logits: torch.Tensor) -> torch.Tensor:
        if step != at_step:
            return logits
        forced = torch.full_like(logits, float("-inf"))  # only the trigger is left, greedy or sampled
        forced[:, trigger_id] = 0.0
        return forced

    return process


@dataclass
class AttentionTrace:
    """One prompt's generation and everything needed to read its attention (batch of one).

    ``attentions`` are head-averaged (:func:`head_mean`): per step, per layer (1, 1, kv_len).
    """

    attentions: list[tuple[torch.Tensor, ...]]
    key_kinds: torch.Tensor  # (1, L + n_steps)
    step_kinds: torch.Tensor  # (1, n_steps)
    prompt_ids: torch.Tensor  # (1, L)
    fed_ids: torch.Tensor  # (1, n_steps): what each step fed
    text: str
    num_blocks: int
    video_grid_thw: torch.Tensor | None  # (3,) t, h, w in patches
    second_per_grid: float | None
    spatial_merge_size: int
    video_token_id: int
    audio_token_id: int
    # The model family's facts (when each audio token sounds), which the heatmaps read the audio timeline by.
    backbone: Backbone

    def audio_token_spans(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(start, end) seconds of each of the prompt's audio tokens, in time order, from the backbone (one token
        per 40 ms for Qwen2.5-Omni, 13 per 1-second window for Qwen3-Omni)."""
        n = int((self.prompt_ids[0] == self.audio_token_id).sum())
        return self.backbone.audio_token_spans(n)

    @property
    def n_layers(self) -> int:
        return len(self.attentions[0]) if self.attentions else 0

    @property
    def prompt_length(self) -> int:
        return self.prompt_ids.shape[1]

    def ratios(self, layers: Layers = None) -> dict[str, KindRatio | None]:
        return attention_ratios(self.attentions, self.key_kinds, self.step_kinds, layers)[0]

    def step_masses(self, layers: Layers = None) -> torch.Tensor:
        """(n_steps, 4) per-step masses (``KEY_KIND_NAMES`` order)."""
        return kind_masses(self.attentions, self.key_kinds, layers)[0]

    def prompt_attention(self, step_group: str, layers: Layers = None) -> torch.Tensor | None:
        """(L,) mean attention row over the prompt keys, over the steps of ``step_group`` (``latent``,
        ``text`` or ``all``); None when the generation has no such step."""
        want = group_mask(self.step_kinds[0], step_group)
        picked = [mean_row(self.attentions[s], layers)[0, : self.prompt_length] for s in torch.nonzero(want)[:, 0]]
        return torch.stack(picked).mean(0) if picked else None


def trace_attention(model: Any, batch: dict, gen_cfg: Any, force_latent_at: int | None = None) -> AttentionTrace:
    """Generate for a one-prompt batch (``collate([...], pad, padding_side="left")``) with attentions kept.

    ``model`` is a :class:`~latentomni.model.wrapper.LatentOmniModel` loaded with
    ``attn_implementation="eager"`` (SDPA and flash attention return no weights).
    """
    from latentomni.model.generate import eos_token_ids, generate

    if batch["input_ids"].shape[0] != 1:
        raise ValueError(f"trace_attention takes one prompt at a time, got a batch of {batch['input_ids'].shape[0]}")
    impl = getattr(model.thinker.config, "_attn_implementation", None)
    if impl != "eager":
        raise ValueError(f"attention weights need eager attention, the model uses {impl!r}; load it with "
                         "attn_implementation='eager'")
    if force_latent_at is not None and (not model.latent.latent_mode or gen_cfg.max_latent_blocks < 1):
        raise ValueError("force_latent_at needs a model in latent mode and max_latent_blocks >= 1 (the analyze "
                         "command switches latent mode on for --force-latent)")
    cfg = dataclasses.replace(gen_cfg, output_attentions=True)
    process = force_trigger(model.token_ids.start, force_latent_at) if force_latent_at is not None else None
    out = generate(model, batch, cfg, logits_processor=process)
    n_steps = len(out.attentions or [])
    latent = out.step_is_latent if out.step_is_latent is not None else torch.zeros(1, 0, dtype=torch.bool)
    latent = latent[:, :n_steps].cpu()
    fed = out.sequences[:, :n_steps].cpu()
    prompt_ids, prompt_mask = batch["input_ids"].cpu(), batch["attention_mask"].cpu()
    c = model.config
    grid = batch.get("video_grid_thw")
    spg = batch.get("video_second_per_grid")
    return AttentionTrace(
        attentions=head_mean(out.attentions or []),
        key_kinds=key_kinds(prompt_ids, prompt_mask, latent, c.video_token_id, c.audio_token_id),
        step_kinds=step_kinds(fed, latent, model.token_ids.start, eos_token_ids(model).tolist()),
        prompt_ids=prompt_ids, fed_ids=fed, text=out.texts[0], num_blocks=out.num_blocks[0],
        video_grid_thw=grid[0].cpu() if grid is not None else None,
        second_per_grid=float(spg[0]) if spg is not None else None,
        spatial_merge_size=c.vision_config.spatial_merge_size,
        video_token_id=c.video_token_id, audio_token_id=c.audio_token_id, backbone=model.backbone,
    )
