"""Latent-aware generation (paper Sec. 3.1-3.2): batched, KV-cached, greedy or sampled.

Every sample of the batch runs its own little state machine, advanced for all samples at once with tensor
ops (no Python loop over the batch). One decoding step feeds one input per sample into the shared KV cache:

* **text mode** -- feed the last sampled token at the next text position; sample the next token from the
  LM head. Feeding ``<Unified_Latent>`` switches the sample to latent mode: its output hidden state is z_1.
* **latent mode** -- feed z_k (the previous step's last-layer hidden state, Eq. 2) as the input embedding
  at its OSPE position (first Kv visual, then Ka audio); the output is z_{k+1}. After z_K has been fed,
  ``</Unified_Latent>`` is inserted and the sample returns to text mode.

Positions, the slot layout and the controlled attention rule come from the same functions the training
forward uses (:mod:`.ospe`, :mod:`.masks`), so a trained model sees at inference what it saw in training.
Without any trigger the loop is token-for-token HF greedy decoding (a test checks this).

The machinery of one step -- the KV cache with what each cached key is (:class:`CachedFeed`) and a latent
slot's position (:func:`slot_positions`) -- is shared with :func:`rollout`, which generates a teacher-forced
training sequence's latent states as decoding would (``LatentConfig.slot_inputs: rollout``): this file is
the only place latent states are decoded.

DeepStack (Qwen3-Omni, :class:`.backbone.DeepStackInputs`): wherever visual tokens are fed -- the prompt's prefill,
a rollout chunk holding the prompt -- their DeepStack features go with them, as in the thinker's own forward and
Hugging Face's ``generate`` (whose later steps feed no visual token, so none either); latent states and text get
none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from .backbone import DeepStackInputs, deepstack_kwargs
from .masks import blocked_queries, chunk_mask
from .ospe import latent_position_offsets


@dataclass
class GenerationConfig:
    max_new_tokens: int = 256  # every generated position counts, latent states included
    do_sample: bool = False  # greedy by default: the thinker's own default samples, a reproducibility trap
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_latent_blocks: int = 4  # after this many blocks the trigger is suppressed
    seed: int | None = None
    output_latents: bool = False
    output_attentions: bool = False  # needs attn_implementation="eager"


@dataclass
class GenerationOutput:
    sequences: torch.Tensor  # (B, T) generated ids; latent states appear as the slot token
    texts: list[str]  # latent spans rendered as <Unified_Latent>[K latents]</Unified_Latent>
    num_blocks: list[int]
    latents: list[torch.Tensor] | None = None  # per sample (n_latents, d)
    attentions: list[tuple[torch.Tensor, ...]] | None = None  # per step, per layer (B, heads, kv_len)
    step_is_latent: torch.Tensor | None = None  # (B, T) bool: the step's *input* was a latent state
    prompt_length: int = 0
    extras: dict = field(default_factory=dict)


def _pick(logits: torch.Tensor, cfg: GenerationConfig, gen: torch.Generator | None) -> torch.Tensor:
    if not cfg.do_sample:
        return logits.argmax(-1)
    logits = logits.float() / max(cfg.temperature, 1e-5)
    if cfg.top_k > 0:
        kth = logits.topk(min(cfg.top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > cfg.top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(-1), 1, generator=gen).squeeze(-1)


class CachedFeed:
    """A batch's KV cache and what each cached key is (a real input or padding, a media token or not), fed
    chunk by chunk: a chunk of Q inputs per sample, or one input per step. Under ``through_latents`` every
    chunk gets the 4D mask of :func:`.masks.chunk_mask` (blocked queries read no media key); under ``causal``
    the 2D key mask, so plain decoding stays token-for-token Hugging Face's."""

    def __init__(self, model, output_attentions: bool = False):
        self.lm = model.thinker.model.language_model
        self.through = model.latent.attention_flow == "through_latents"
        self.cache = DynamicCache(config=model.thinker.config.get_text_config())
        self.output_attentions = output_attentions
        self.key_valid: torch.Tensor | None = None  # (B, Lk) bool
        self.media_keys: torch.Tensor | None = None  # (B, Lk) bool

    def __call__(self, embeds: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, media: torch.Tensor,
                 blocked: torch.Tensor, deepstack: DeepStackInputs | None = None):
        """Feed ``embeds`` (B, Q, d) at ``positions`` (3, B, Q). ``valid`` (B, Q): real inputs, not padding;
        ``media`` (B, Q): media tokens; ``blocked`` (B, Q): queries that may not read media keys; ``deepstack``:
        the chunk's DeepStack inputs, if it holds visual tokens of a DeepStack backbone."""
        valid = valid.bool()
        media = media.bool() & valid
        grow = self.key_valid is not None
        self.key_valid = torch.cat([self.key_valid, valid], 1) if grow else valid
        self.media_keys = torch.cat([self.media_keys, media], 1) if grow else media
        if self.through:
            mask = chunk_mask(self.key_valid, self.media_keys, blocked.bool(), embeds.dtype)
        else:
            mask = self.key_valid.long()
        return self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, cache=self.cache,
                       use_cache=True, output_attentions=self.output_attentions, **deepstack_kwargs(deepstack))


def slot_positions(block_start: torch.Tensor, slot: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """OSPE position (Eq. 3) of latent slot ``slot`` of a block whose first slot id is ``block_start`` (the
    trigger's position + 1), as (3, B, 1) for one decoding step of B samples."""
    pos = block_start + offsets[slot]
    return pos.view(1, -1, 1).expand(3, -1, 1)


@torch.no_grad()
def generate(model, batch: dict, cfg: GenerationConfig | None = None, logits_processor=None) -> GenerationOutput:
    """Generate for a left-padded prompt batch (``collate(..., padding_side="left")``).

    ``logits_processor(step, logits) -> logits`` may reshape the next-token scores of text-mode steps
    (e.g. to force a trigger in a test, or to ban tokens).
    """
    cfg = cfg or GenerationConfig()
    lat, ids = model.latent, model.token_ids
    head = model.thinker.lm_head
    embed = model.thinker.model.get_input_embeddings()
    eos_ids = eos_token_ids(model)
    gen = torch.Generator(device=model.device).manual_seed(cfg.seed) if cfg.seed is not None else None
    k_total = lat.num_latents if lat.latent_mode else 0
    offsets = latent_position_offsets(lat).to(model.device) if k_total else None

    # Prefill: the prompt with its media, HF positions, a fresh cache.
    input_ids, attn = batch["input_ids"].to(model.device), batch["attention_mask"].to(model.device)
    prompt = model.embed_media({**batch, "input_ids": input_ids})
    embeds = prompt.embeds
    positions = model.rope_positions({k: v for k, v in batch.items() if k != "slot_index"})
    feed = CachedFeed(model, cfg.output_attentions)
    out = feed(embeds, positions, attn, model.media_key_mask(input_ids), torch.zeros_like(attn, dtype=torch.bool),
               prompt.deepstack)
    h = out.last_hidden_state[:, -1]
    b = input_ids.shape[0]
    next_pos = positions.masked_fill(~attn.bool().unsqueeze(0), -1).amax(dim=(0, 2)) + 1  # (B,)
    one = torch.ones(b, 1, dtype=torch.bool, device=model.device)

    process = logits_processor or (lambda step, scores: scores)
    blocks = torch.zeros(b, dtype=torch.long, device=model.device)
    tok = _pick(_suppress(process(0, head(h)), blocks, cfg, ids, k_total), cfg, gen)
    done = torch.zeros(b, dtype=torch.bool, device=model.device)
    in_latent = torch.zeros_like(done)
    triggered = torch.zeros_like(done)
    slot = torch.zeros_like(blocks)
    p0 = torch.zeros_like(blocks)
    latent_in = torch.zeros_like(h)
    steps_out, latents, attns, lat_mask = [tok], [], [], []

    for step in range(1, cfg.max_new_tokens):
        done = done | torch.isin(tok, eos_ids) & ~in_latent
        if done.all():
            break
        feeding_trigger = (tok == ids.start) & ~in_latent
        # Inputs and positions of this step, per sample.
        x = torch.where(in_latent.unsqueeze(-1), latent_in, embed(tok))
        text_pos = next_pos.view(1, b, 1).expand(3, b, 1)
        pos = text_pos if offsets is None else torch.where(
            in_latent.view(1, b, 1), slot_positions(p0, slot.clamp(max=k_total - 1), offsets), text_pos)
        blocked = triggered & ~in_latent & ~feeding_trigger
        out = feed(x.unsqueeze(1), pos, one, ~one, blocked.unsqueeze(1))
        h = out.last_hidden_state[:, -1]
        if cfg.output_attentions:
            attns.append(tuple(a[:, :, -1] for a in out.attentions))
        lat_mask.append(in_latent.clone())

        # Transitions, all samples at once.
        last_slot = in_latent & (slot == k_total - 1)
        produces_latent = feeding_trigger | (in_latent & ~last_slot)
        new_tok = _pick(_suppress(process(step, head(h)), blocks, cfg, ids, k_total), cfg, gen)
        emitted = torch.where(produces_latent, torch.full_like(tok, ids.slot),
                              torch.where(last_slot, torch.full_like(tok, ids.end), new_tok))
        emitted = torch.where(done, torch.full_like(tok, _pad(model)), emitted)
        next_pos = torch.where(~in_latent, next_pos + 1, next_pos)
        p0 = torch.where(feeding_trigger, next_pos, p0)
        next_pos = torch.where(last_slot, p0 + k_total, next_pos)
        slot = torch.where(feeding_trigger, torch.zeros_like(slot), torch.where(in_latent, slot + 1, slot))
        blocks = blocks + feeding_trigger.long()
        triggered = triggered | feeding_trigger
        latent_in = torch.where(produces_latent.unsqueeze(-1), h, latent_in)
        if cfg.output_latents:
            latents.append(torch.where(produces_latent.unsqueeze(-1), h, torch.full_like(h, float("nan"))))
        in_latent = produces_latent & ~done
        tok = emitted
        steps_out.append(tok)

    seq = torch.stack(steps_out, 1)
    texts = [render(model.processor.tokenizer, row.tolist(), ids) for row in seq]
    result = GenerationOutput(seq, texts, blocks.tolist(), prompt_length=input_ids.shape[1],
                              step_is_latent=torch.stack(lat_mask, 1) if lat_mask else None)
    if cfg.output_latents and latents:
        stacked = torch.stack(latents, 1)  # (B, T, d)
        result.latents = [row[~row.isnan().any(-1)] for row in stacked]
    if cfg.output_attentions:
        result.attentions = attns
    return result


@torch.no_grad()
def rollout(model, batch: dict, embeds: torch.Tensor, positions: torch.Tensor,
            n_blocks: int | None = None, deepstack: DeepStackInputs | None = None) -> torch.Tensor:
    """The latent states decoding feeds back at the slots of a teacher-forced sequence, as (n_slots, d) in
    the slot order of ``batch["slot_index"]`` (sample by sample, block by block, then k).

    The text is the teacher's; every block's K states are the model's own, generated exactly as
    :func:`generate` generates them: the same cache and masks (:class:`CachedFeed`), OSPE positions
    (:func:`slot_positions`), the last-layer state fed back as the next slot's input (Eq. 2), every block
    after the model's own earlier blocks. Batched over samples (right padding is fine): block j of every
    sample at once, the text span before each block's trigger prefilled as one left-padded chunk, then K
    latent steps; a sample without block j feeds padding. No gradient: the states are inputs of the one
    gradient pass that follows, not part of its graph.

    ``embeds`` (B, L, d) are the sequence's input embeddings with media (:meth:`embed_prompt`) and
    ``positions`` (3, B, L) its rotary positions (:meth:`rope_positions`); slot positions in them are not read.
    ``n_blocks``: run at least this many blocks (padding past the batch's own), so that every process of a
    sharded run (ZeRO-3, FSDP gather parameters at each module call) calls the language model equally often.
    ``deepstack``: the sequence's DeepStack inputs (:meth:`embed_media`), fed with the visual tokens of each chunk.
    """
    ids, attn, slots = batch["input_ids"], batch["attention_mask"].bool(), batch["slot_index"]
    b, n, d = embeds.shape
    k_total = model.latent.num_latents
    first = slots == 0  # each block's slot 0, just after its trigger
    rows, cols = first.nonzero(as_tuple=True)  # row-major: sample by sample, block by block
    rank = first.long().cumsum(1)[rows, cols] - 1
    n_blocks = max(int(rank.max()) + 1 if rank.numel() else 0, n_blocks or 0)
    if n_blocks == 0:
        return embeds.new_zeros(0, d)
    trigger = torch.full((b, n_blocks), -1, dtype=torch.long, device=ids.device)
    trigger[rows, rank] = cols - 1
    has = trigger >= 0  # (B, J): sample b has a block j
    media = model.media_key_mask(ids) & attn
    blocked = blocked_queries(ids == model.token_ids.start, slots >= 0, attn)
    offsets = latent_position_offsets(model.latent).to(ids.device)
    feed = CachedFeed(model)
    no = torch.zeros(b, 1, dtype=torch.bool, device=ids.device)
    states = embeds.new_zeros(b, n_blocks, k_total, d)
    span_start = torch.zeros(b, dtype=torch.long, device=ids.device)  # first position of the next text span
    for j in range(n_blocks):
        end = trigger[:, j]
        width = max(int(torch.where(has[:, j], end - span_start + 1, 0).max()), 1)
        idx = end.unsqueeze(1) - torch.arange(width - 1, -1, -1, device=ids.device)  # trigger last
        valid = (idx >= span_start.unsqueeze(1)) & has[:, j:j + 1]
        idx = idx.clamp(0, n - 1)
        out = feed(embeds.gather(1, idx.unsqueeze(-1).expand(-1, -1, d)),
                   positions.gather(2, idx.unsqueeze(0).expand(3, -1, -1)), valid, media.gather(1, idx),
                   blocked.gather(1, idx), deepstack.gather(idx, valid) if deepstack is not None else None)
        h = out.last_hidden_state[:, -1]  # z_1: the trigger's state
        block_start = positions[0].gather(1, idx[:, -1:]).squeeze(1) + 1
        for k in range(k_total):
            states[:, j, k] = h
            step = torch.full_like(block_start, k, dtype=torch.long)  # positions may be float (Qwen3-Omni)
            out = feed(h.unsqueeze(1), slot_positions(block_start, step, offsets), has[:, j:j + 1], no, no)
            h = out.last_hidden_state[:, -1]
        span_start = torch.where(has[:, j], end + k_total + 1, span_start)
    return states[has].reshape(-1, d)


def _suppress(logits, blocks, cfg: GenerationConfig, ids, k_total: int):
    """The latent trigger is only available in latent mode and up to ``max_latent_blocks`` times; the slot
    and stop tokens are never sampled (the loop inserts them)."""
    logits = logits.clone()
    logits[:, ids.slot] = float("-inf")
    logits[:, ids.end] = float("-inf")
    if k_total == 0:
        logits[:, ids.start] = float("-inf")
    else:
        logits[:, ids.start] = logits[:, ids.start].masked_fill(blocks >= cfg.max_latent_blocks, float("-inf"))
    return logits


def eos_token_ids(model) -> torch.Tensor:
    """The ids that end a reply: the thinker's generation config ``eos_token_id`` (one id or a list), the ids
    Hugging Face's ``generate`` stops on, so decoding stays token-for-token HF's; the tokenizer's EOS when the
    config names none. ``<|endoftext|>`` ends a reply only where the config lists it (Qwen2.5-Omni's own
    generation config decides, not this module). Shared with the attention analysis."""
    eos = getattr(getattr(model.thinker, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = model.processor.tokenizer.eos_token_id
    ids = sorted({int(i) for i in ([eos] if isinstance(eos, int) else eos or [])})
    if not ids:
        raise ValueError("the checkpoint names no EOS token (generation_config.eos_token_id, tokenizer.eos_token)")
    return torch.tensor(ids, device=model.device)


def _pad(model) -> int:
    tok = model.processor.tokenizer
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def render(tokenizer, ids: list[int], latent_ids) -> str:
    """Decode generated ids, showing each latent span as ``<Unified_Latent>[K latents]</Unified_Latent>``."""
    pieces: list[str] = []
    run: list[int] = []
    n_latent = 0
    in_block = False

    def flush():
        if run:
            pieces.append(tokenizer.decode(run, skip_special_tokens=True))
            run.clear()

    for i in ids:
        if i == latent_ids.start:
            flush()
            pieces.append("<Unified_Latent>")
            in_block, n_latent = True, 0
        elif i == latent_ids.slot:
            n_latent += 1
        elif i == latent_ids.end:
            pieces.append(f"[{n_latent} latents]</Unified_Latent>")
            in_block = False
        else:
            run.append(i)
    flush()
    if in_block:
        pieces.append(f"[{n_latent} latents]")
    return "".join(pieces)
