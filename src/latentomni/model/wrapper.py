"""LatentOmniModel: an unmodified Hugging Face Qwen-Omni thinker plus the latent machinery.

Nothing of transformers is copied or patched: the wrapper calls the thinker's own encoders
(``get_video_features``, ``get_audio_features``), its ``get_rope_index`` and its text model, and owns only
what the paper adds -- anchors at latent slots, OSPE positions, the controlled attention mask and the three
losses -- in one single teacher-forced pass (Sec. 3.4). With ``slot_inputs: rollout`` (or ``scheduled``) the
slots of that pass hold the model's own states instead, generated beforehand without gradient by the decoding
loop's own machinery (:func:`.generate.rollout`).

Everything that differs between model families (Qwen2.5-Omni, Qwen3-Omni: classes, token rates, DeepStack, the
mixture-of-experts router loss) is asked of the model's :class:`.backbone.Backbone`, picked from the checkpoint.

DeepStack (Qwen3-Omni): the vision tower also hands features of intermediate layers to the text model, which adds
them to the hidden states of its first layers at the visual tokens. The wrapper passes them wherever visual tokens
are fed (this forward, the rollout, the decoding loop's prefill), exactly as the thinker's own forward does. The
anchors pool only the merger's LLM-space output (the features scattered into the prompt embeddings), never the
DeepStack features: an anchor is the *input embedding* of a latent slot and the target of the state fed back there
at inference, so it must live where input embeddings live; DeepStack features are residual additions inside the
first layers, in another space, and a latent slot (not a visual token) receives none, in training as in decoding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import LatentConfig
from .anchors import audio_token_window, pool_anchors, video_token_window
from .backbone import Backbone, DeepStackInputs, backbone_class, backbone_for, checkpoint_model_type, deepstack_kwargs
from .generate import rollout
from .losses import SegmentBank, latent_loss_items, sync_loss, sync_pairs, text_loss
from .masks import blocked_queries, training_mask
from .ospe import apply_ospe
from .tokens import LatentTokenIds, add_latent_tokens

CONFIG_NAME = "latentomni.json"
PARAMS_NAME = "latentomni_params.safetensors"


# The items each term of Eq. 7 averages over, in this order: text target tokens (Eq. 6), latent states
# (Eq. 5, one per slot), latent blocks (Eq. 4 is a mean over blocks).
LOSS_ITEMS = ("text_tokens", "latent_states", "latent_blocks")


@dataclass
class LatentOmniOutput:
    loss: torch.Tensor
    loss_text: torch.Tensor
    loss_latent: torch.Tensor
    loss_sync: torch.Tensor
    temperature: torch.Tensor | None = None  # τ of Eq. 4, detached (read inside forward: sharded-safe)
    per_sample: dict[str, torch.Tensor] | None = None
    # The MoE router's load-balancing loss (unweighted; weighted by latent.lambda_router in ``loss``); None for a
    # dense backbone.
    loss_router: torch.Tensor | None = None


@dataclass
class PromptEmbeddings:
    """A batch's input embeddings with media scattered in, the per-video and per-audio LLM-space features (for
    anchors), and the DeepStack inputs of the text model (None for a backbone without DeepStack)."""

    embeds: torch.Tensor
    videos: list[torch.Tensor]
    audios: list[torch.Tensor]
    deepstack: DeepStackInputs | None = None


class LatentOmniModel(nn.Module):
    # The training variant that made these weights (``latent``, ``text_cot``, ``vanilla``), saved in
    # latentomni.json so a checkpoint says what it is; None where unknown (a model built from a plain base, or a
    # checkpoint written before the variant was recorded).
    variant: str | None = None

    def __init__(self, thinker: nn.Module, processor, latent: LatentConfig, token_ids: LatentTokenIds,
                 backbone: Backbone | None = None):
        super().__init__()
        self.thinker, self.processor, self.latent, self.token_ids = thinker, processor, latent, token_ids
        self.backbone = backbone if backbone is not None else backbone_for(thinker.config)
        # log τ of Eq. 4, learnable. Shape (1,), not 0-dim: DeepSpeed ZeRO flattens parameters into buckets
        # with ``view`` and fails on 0-dim tensors. Stored 0-dim on disk (latentomni_params.safetensors).
        self.log_temperature = nn.Parameter(torch.tensor([float(latent.init_temperature)]).log())
        # slot_inputs 'scheduled': the probability that a block's slots hold its own rolled-out states in the
        # training pass. The trainer's SlotSchedule callback ramps it each step; a plain attribute, not state.
        self.slot_own_probability = 0.0

    # -- construction and persistence -------------------------------------------------------------------
    @classmethod
    def from_base(cls, path: str | Path, latent: LatentConfig | None = None, dtype: torch.dtype | None = None,
                  attn_implementation: str | None = None) -> LatentOmniModel:
        """Start from a released (or tiny) Qwen2.5-Omni or Qwen3-Omni thinker checkpoint (the family is read from
        its config.json, see :func:`.backbone.backbone_class`); adds the latent tokens."""
        kwargs = {"dtype": dtype} if dtype is not None else {}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        thinker, processor = backbone_class(checkpoint_model_type(path)).load(path, **kwargs)
        ids = add_latent_tokens(processor.tokenizer, thinker)
        return cls(thinker, processor, latent or LatentConfig(), ids)

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype | None = None,
                        attn_implementation: str | None = None, **overrides) -> LatentOmniModel:
        """Load a LatentOmni checkpoint written by :meth:`save_pretrained` (or by the trainer).

        ``overrides`` change latent settings that do not alter the weights (e.g. ``attention_flow``).
        """
        path = Path(path)
        cfg_file = path / CONFIG_NAME
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{path} is not a LatentOmni checkpoint (no {CONFIG_NAME}); "
                                    "use LatentOmniModel.from_base for a plain Qwen-Omni checkpoint")
        meta = json.loads(cfg_file.read_text())
        latent = LatentConfig(**{**meta["latent"], **overrides})
        kwargs = {"dtype": dtype} if dtype is not None else {}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        thinker, processor = backbone_class(checkpoint_model_type(path)).load(path, **kwargs)
        model = cls(thinker, processor, latent, LatentTokenIds.from_tokenizer(processor.tokenizer))
        model.variant = meta.get("variant")  # absent in checkpoints from before it was saved
        if (path / PARAMS_NAME).is_file():
            params = load_file(str(path / PARAMS_NAME))
            model.log_temperature.data.copy_(params["log_temperature"].reshape(1))
        return model

    def save_pretrained(self, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write a checkpoint that loads with :meth:`from_pretrained` and with the plain HF thinker class.

        ``state_dict`` is this module's full state dict when the live parameters are sharded (DeepSpeed
        ZeRO-3, FSDP): the Trainer gathers it and hands it over; the live tensors are then never read.
        LoRA adapters are folded into their base weights (W + scale * B A), so a checkpoint is always plain
        thinker weights.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = state_dict if state_dict is not None else self.state_dict()
        thinker_state = {k.removeprefix("thinker."): v for k, v in state.items() if k.startswith("thinker.")}
        self.thinker.save_pretrained(str(path), state_dict=fold_lora(thinker_state, self.thinker))
        self.processor.save_pretrained(str(path))
        meta = {"latent": self.latent.model_dump(), "variant": self.variant, "token_ids": vars(self.token_ids),
                "format": 1}
        (path / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
        log_tau = state.get("log_temperature", self.log_temperature).detach().cpu().float().reshape(())
        save_file({"log_temperature": log_tau}, str(path / PARAMS_NAME))

    # -- helpers shared with generation -----------------------------------------------------------------
    @property
    def config(self):
        return self.thinker.config

    @property
    def device(self) -> torch.device:
        return self.thinker.device

    def embed_prompt(self, batch: dict) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Token embeddings with media features scattered in, exactly as the thinker does it; also returns
        the per-video and per-audio LLM-space features (reused for anchors, never encoded twice). The DeepStack
        inputs come with :meth:`embed_media`."""
        media = self.embed_media(batch)
        return media.embeds, media.videos, media.audios

    def embed_media(self, batch: dict) -> PromptEmbeddings:
        """:meth:`embed_prompt` plus the text model's DeepStack inputs (None for a backbone without DeepStack)."""
        inner = self.thinker.model
        ids = batch["input_ids"]
        embeds = inner.get_input_embeddings()(ids)
        videos: list[torch.Tensor] = []
        audios: list[torch.Tensor] = []
        deepstack = None
        if batch.get("pixel_values_videos") is not None:
            pooled, stacked = self.backbone.video_features(self.thinker, batch["pixel_values_videos"],
                                                           batch["video_grid_thw"])
            videos = [v.to(embeds.dtype) for v in pooled]
            visual = ids == self.config.video_token_id
            embeds = embeds.masked_scatter(visual.unsqueeze(-1), torch.cat(videos))
            if stacked is not None:
                deepstack = DeepStackInputs(visual, [torch.cat(layer).to(embeds.dtype) for layer in stacked])
        if batch.get("input_features") is not None:
            fmask = batch["feature_attention_mask"]
            out = inner.get_audio_features(batch["input_features"], fmask, return_dict=True)
            lengths = self.backbone.audio_feature_lengths(self.thinker, fmask)
            audios = list(out.last_hidden_state.to(embeds.dtype).split(lengths))
            mask = (ids == self.config.audio_token_id).unsqueeze(-1)
            embeds = embeds.masked_scatter(mask, torch.cat(audios))
        return PromptEmbeddings(embeds, videos, audios, deepstack)

    def rope_positions(self, batch: dict) -> torch.Tensor:
        """(3, B, L) positions: the family's get_rope_index for every token, OSPE for latent slots."""
        positions = self.backbone.rope_index(self.thinker, batch)
        if "slot_index" in batch:
            positions = apply_ospe(positions, batch["slot_index"], self.latent)
        return positions

    def media_key_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        c = self.config
        return (input_ids == c.video_token_id) | (input_ids == c.audio_token_id) | (input_ids == c.image_token_id)

    def block_anchors(self, batch: dict, videos: list[torch.Tensor], audios: list[torch.Tensor]) -> torch.Tensor:
        """(n_blocks, K, d) anchors: Kv visual then Ka audio, pooled from each cited window."""
        return self.window_anchors(batch, videos, audios, batch["block_windows"], batch["block_owner"])

    def segment_anchors(self, batch: dict, videos: list[torch.Tensor], audios: list[torch.Tensor]) -> torch.Tensor:
        """(n_segments, K, d) anchors of every segment of the batch's clips (``batch["segment_windows"]``, one
        row per distinct clip segment, see :func:`..data.collate.collate`): the candidates that the
        ``contrastive`` latent loss and the retrieval diagnostic tell the cited segment apart from."""
        return self.window_anchors(batch, videos, audios, batch["segment_windows"], batch["segment_owner"])

    def window_anchors(self, batch: dict, videos: list[torch.Tensor], audios: list[torch.Tensor],
                       windows: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        """(n, K, d) anchors of ``windows`` (n, 2) seconds of sample ``owners`` (n,)'s media."""
        cfg, merge = self.latent, self.config.vision_config.spatial_merge_size
        owners = owners.tolist()
        video_of = {int(o): i for i, o in enumerate(batch.get("video_owner", torch.empty(0)).tolist())}
        audio_of = {int(o): i for i, o in enumerate(batch.get("audio_owner", torch.empty(0)).tolist())}
        out = []
        for b, (t0, t1) in enumerate(windows.tolist()):
            sid, parts = owners[b], []
            if cfg.num_visual:
                if sid not in video_of:
                    raise ValueError(f"sample {batch['sample_ids'][sid]}: visual latents need a video input")
                vi = video_of[sid]
                spg = float(batch["video_second_per_grid"][vi])
                idx = video_token_window(batch["video_grid_thw"][vi], spg, merge, t0, t1)
                parts.append(pool_anchors(videos[vi][idx.to(videos[vi].device)], cfg.num_visual))
            if cfg.num_audio:
                if sid not in audio_of:
                    raise ValueError(f"sample {batch['sample_ids'][sid]}: audio latents need an audio input")
                ai = audio_of[sid]
                idx = audio_token_window(audios[ai].shape[0], t0, t1, self.backbone)
                if idx.numel() == 0:
                    raise ValueError(f"sample {batch['sample_ids'][sid]}: no audio in window [{t0}, {t1})")
                parts.append(pool_anchors(audios[ai][idx.to(audios[ai].device)], cfg.num_audio))
            out.append(torch.cat(parts))
        if not out:
            d = self.config.text_config.hidden_size
            return torch.zeros(0, cfg.num_latents, d, device=self.device)
        return torch.stack(out)

    # -- training forward -------------------------------------------------------------------------------
    def teacher_forced_hidden(self, batch: dict, slot_inputs: torch.Tensor | None = None,
                              output_attentions: bool = False, media_out: dict | None = None,
                              own_blocks: torch.Tensor | None = None, router_out: dict | None = None):
        """Last-layer hidden states of a whole teacher-forced sequence (one pass).

        Latent slots take ``slot_inputs`` (n_slots, d) when given, else the cited windows' anchors; the
        same positions (OSPE) and attention rule as :func:`..generate.generate` apply.
        Returns (hidden (B, L, d), anchors (n_blocks, K, d) or None, per-layer attentions or None); attentions
        need ``attn_implementation="eager"``. ``own_blocks`` (n_blocks,) bool: the blocks whose slots hold the
        model's own states (:meth:`rollout_slot_states`, computed from this pass's embeddings without gradient)
        instead; the anchors are still returned, as the targets. ``media_out``, when given, receives the
        LLM-space ``videos`` and ``audios`` features (so segment anchors for the latent loss or diagnostics
        are pooled without encoding twice). ``router_out``, when given and the backbone has a MoE router,
        receives the pass's router load-balancing loss as ``loss_router``.
        """
        ids, attn, slots = batch["input_ids"], batch["attention_mask"], batch["slot_index"]
        prompt = self.embed_media(batch)
        embeds, videos, audios = prompt.embeds, prompt.videos, prompt.audios
        if media_out is not None:
            media_out.update(videos=videos, audios=audios)
        is_slot = slots >= 0
        anchors = self.block_anchors(batch, videos, audios) if is_slot.any() and slot_inputs is None else None
        fill = slot_inputs if slot_inputs is not None else (anchors.reshape(-1, anchors.shape[-1])
                                                            if anchors is not None else None)
        positions = self.rope_positions(batch)
        n_rollout = self._rollout_blocks(batch, bool(own_blocks.any())) if own_blocks is not None else 0
        if n_rollout:
            own = rollout(self, batch, embeds.detach(), positions, n_blocks=n_rollout, deepstack=prompt.deepstack)
            use = own_blocks.to(own.device).repeat_interleave(self.latent.num_latents).unsqueeze(-1)
            if own.numel():
                fill = own if fill is None else torch.where(use, own, fill.to(own.dtype))
        if fill is not None:
            embeds = embeds.masked_scatter(is_slot.unsqueeze(-1), fill.to(embeds.dtype))
        mask = attn
        if self.latent.attention_flow == "through_latents":
            blocked = blocked_queries(ids == self.token_ids.start, is_slot, attn)
            mask = training_mask(attn, self.media_key_mask(ids), blocked, embeds.dtype)
        router = {"output_router_logits": True} if router_out is not None and self.backbone.has_router else {}
        out = self.thinker.model.language_model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False,
            output_attentions=output_attentions, **deepstack_kwargs(prompt.deepstack), **router,
        )
        if router:
            router_out["loss_router"] = self.backbone.router_aux_loss(out.router_logits, attn)
        return out.last_hidden_state, anchors, (out.attentions if output_attentions else None)

    @torch.no_grad()
    def rollout_slot_states(self, batch: dict) -> torch.Tensor:
        """(n_slots, d): the states decoding feeds back at the latent slots of ``batch``'s teacher-forced
        sequences (teacher text, the model's own latent blocks), in the slot order of ``batch["slot_index"]``;
        see :func:`..generate.rollout`. No gradient."""
        prompt = self.embed_media(batch)
        return rollout(self, batch, prompt.embeds, self.rope_positions(batch), deepstack=prompt.deepstack)

    def own_slot_blocks(self, batch: dict) -> torch.Tensor | None:
        """The blocks whose slots hold the model's own states in the training pass (``latent.slot_inputs``):
        none for ``anchors`` (None), all for ``rollout``, each with probability :attr:`slot_own_probability`
        for ``scheduled`` ((n_blocks,) bool, empty for a batch without blocks)."""
        mode = self.latent.slot_inputs
        n = batch["block_owner"].numel() if "block_owner" in batch else 0
        if mode == "anchors":
            return None
        if mode == "rollout":
            return torch.ones(n, dtype=torch.bool, device=self.device)
        return torch.rand(n, device=self.device) < float(self.slot_own_probability)

    def _rollout_blocks(self, batch: dict, needed: bool) -> int:
        """How many blocks the rollout runs: the batch's most blocks per sample when ``needed``, else 0. In a
        multi-process training run, the maximum over processes: ZeRO-3 and FSDP gather parameters at every
        module call, so every process must call the language model equally often (one all-reduce a step)."""
        owner = batch.get("block_owner")
        n = int(torch.bincount(owner).max()) if needed and owner is not None and owner.numel() else 0
        if self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            count = torch.tensor([n], device=self.device)
            dist.all_reduce(count, op=dist.ReduceOp.MAX)
            n = int(count)
        return n

    @staticmethod
    def loss_items(batch: dict) -> torch.Tensor:
        """How many items each term of Eq. 7 averages over in ``batch`` (see :data:`LOSS_ITEMS`), as a (3,)
        tensor. The trainer sums it over the micro-batches of a step and over processes, so that a step's
        loss is that of its global batch however it is split."""
        labels, slots = batch["labels"], batch["slot_index"]
        n_blocks = batch["block_owner"].numel() if "block_owner" in batch else 0
        return torch.stack([(labels[:, 1:] != -100).sum(), (slots >= 0).sum(),
                            torch.tensor(n_blocks, device=labels.device)]).float()

    def forward(self, per_sample: bool = False, loss_normalizers: torch.Tensor | None = None,
                **batch) -> LatentOmniOutput:
        """Single teacher-forced pass returning L_total (Eq. 7) and its terms.

        Each term is a mean over its items in this batch. With ``loss_normalizers`` (the global item counts
        of :meth:`loss_items`, summed over a step's micro-batches and processes) each term is instead this
        batch's sum divided by the global count: summed over micro-batches and processes these give exactly
        the loss of the global batch (token-weighted, as transformers' ``average_tokens_across_devices``).

        A backbone with a MoE router (Qwen3-Omni) adds ``lambda_router`` times its load-balancing loss over the
        batch's real tokens; under ``loss_normalizers`` it is weighted by the batch's share of text tokens, so the
        step's value is a text-token-weighted mean of the micro-batches' losses.
        """
        cfg = self.latent
        labels, is_slot = batch["labels"], batch["slot_index"] >= 0
        media: dict = {}
        router: dict | None = {} if self.backbone.has_router else None
        hidden, anchors, _ = self.teacher_forced_hidden(batch, media_out=media, own_blocks=self.own_slot_blocks(batch),
                                                        router_out=router)

        # L_text: next-token CE on discrete assistant tokens only (labels already exclude prompt, slots, u').
        target = labels[:, 1:]
        text_sel = target != -100
        logits = self.thinker.lm_head(hidden[:, :-1][text_sel])
        loss_text = text_loss(logits, target[text_sel])

        # L_latent: the state before slot k (the trigger for k=0) predicts anchor k: z_k = h_{pos(k)-1}.
        latent_sel = is_slot[:, 1:]
        z = hidden[:, :-1][latent_sel]
        zero = hidden.sum() * 0.0
        latent_items = self.latent_items(batch, z, anchors, media) if anchors is not None else None
        loss_latent = latent_items.mean() if latent_items is not None and latent_items.numel() else zero
        loss_sync = zero + self.log_temperature.sum() * 0.0
        if anchors is not None and cfg.num_visual and cfg.num_audio:
            zb = z.reshape(-1, cfg.num_latents, z.shape[-1])
            zb = zb.detach() if cfg.sync_detach else zb
            v, a = sync_pairs(zb[:, : cfg.num_visual], zb[:, cfg.num_visual:], min(cfg.num_visual, cfg.num_audio))
            loss_sync = sync_loss(v, a, self.log_temperature.reshape(()), negatives=cfg.sync_negatives)
        loss_router = router.get("loss_router") if router is not None else None
        if loss_router is not None:
            loss_router = loss_router.to(hidden.device)
        if loss_normalizers is not None:
            share = self.loss_items(batch).to(loss_normalizers.device) / loss_normalizers.clamp_min(1)
            loss_text, loss_latent, loss_sync = (t * s for t, s in zip((loss_text, loss_latent, loss_sync),
                                                                     share.to(hidden.device), strict=True))
            if loss_router is not None:
                loss_router = loss_router * share[0].to(hidden.device)
        total = loss_text + cfg.lambda_latent * loss_latent + cfg.lambda_sync * loss_sync
        if loss_router is not None:
            total = total + cfg.lambda_router * loss_router
        extra = self._per_sample(logits, target, text_sel, latent_items, latent_sel) if per_sample else None
        tau = self.log_temperature.detach().exp().reshape(())
        return LatentOmniOutput(total.reshape(()), loss_text, loss_latent, loss_sync, tau, extra, loss_router)

    def latent_items(self, batch: dict, z: torch.Tensor, anchors: torch.Tensor, media: dict) -> torch.Tensor:
        """Per-latent values (n_slots,) of the configured latent loss (``latent.latent_loss``, see
        :func:`.losses.latent_loss_items`) for the states ``z`` that predict the blocks' ``anchors``.

        ``contrastive`` pools the anchors of every segment of the batch's clips (``segment_windows``) from the
        ``media`` features the pass already computed, and tells each latent's cited segment apart from them.
        """
        cfg = self.latent
        flat = anchors.reshape(-1, anchors.shape[-1])
        if cfg.latent_loss != "contrastive":
            return latent_loss_items(z, flat, cfg.latent_loss)
        if "segment_windows" not in batch:
            raise ValueError("latent_loss 'contrastive' needs the batch's segment table (segment_windows, "
                             "segment_owner, segment_clip, block_segment); build batches with data.collate.collate")
        k, dev = cfg.num_latents, z.device
        bank = SegmentBank(self.segment_anchors(batch, media["videos"], media["audios"]).to(dev),
                           batch["segment_clip"].to(dev))
        slot = torch.arange(k, device=dev).repeat(anchors.shape[0])
        segment = batch["block_segment"].to(dev).repeat_interleave(k)
        return latent_loss_items(z, flat, "contrastive", slot=slot, segment=segment, bank=bank,
                                 temperature=cfg.contrastive_temperature, center=cfg.center_anchors)

    @staticmethod
    def _per_sample(logits, target, text_sel, latent_items, latent_sel) -> dict[str, torch.Tensor]:
        b = target.shape[0]
        rows = torch.arange(b, device=target.device).unsqueeze(1).expand_as(target)
        ce = nn.functional.cross_entropy(logits.float(), target[text_sel], reduction="none")
        text = torch.zeros(b, device=ce.device).index_add(0, rows[text_sel], ce)
        text = text / text_sel.sum(1).clamp_min(1)
        lat = torch.zeros(b, device=ce.device)
        if latent_items is not None:
            lat = lat.index_add(0, rows[latent_sel], latent_items.float()) / latent_sel.sum(1).clamp_min(1)
        return {"loss_text": text, "loss_latent": lat}


def resolve_dtype(name: str) -> torch.dtype | None:
    """A config's dtype name as torch dtype; ``auto`` is bf16 where the GPU has it, else the checkpoint's own."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def plain_key(key: str) -> str:
    """A state key with peft's ``base_layer`` hops removed (nested when one module carries several targets)."""
    while ".base_layer." in key:
        key = key.replace(".base_layer.", ".")
    return key


def _expert_delta(layer, a: torch.Tensor, b: torch.Tensor, adapter: str) -> torch.Tensor:
    """LoRA's update of a fused 3-D expert parameter (peft's ``ParamWrapper``: A is (experts*r, in), B is
    (out, r*experts), one rank-r pair per expert), laid out like that parameter."""
    if layer.num_experts == 1:
        return layer.scaling[adapter] * (b.float() @ a.float())
    a = a.float().reshape(layer.num_experts, -1, a.shape[-1])
    b = b.float().reshape(b.shape[0], -1, layer.num_experts)
    layout = "e o i" if layer._did_swap_in_out_features else "e i o"
    return torch.einsum(f"o r e, e r i -> {layout}", b, a) * layer.scaling[adapter]


def fold_lora(state: dict[str, torch.Tensor], thinker: nn.Module) -> dict[str, torch.Tensor] | None:
    """``state`` (thinker keys) with LoRA folded into the base weights (W + scale * B A) and peft's names
    undone; ``state`` itself when the thinker has no LoRA layer.

    Two kinds of adapted weight: an ``nn.Linear`` (``target_modules``: the attention projections) and a fused
    3-D expert parameter of a mixture-of-experts block (``target_parameters``, peft's ``ParamWrapper``:
    Qwen3-Omni's ``mlp.experts.gate_up_proj`` / ``down_proj``), where one module may be wrapped once per
    targeted parameter. Works from the state dict's tensors (which may be a gathered copy of sharded
    parameters), reading only each LoRA layer's scaling and layout from the live module.
    """
    from peft.tuners.lora import LoraLayer, ParamWrapper

    layers = {name: m for name, m in thinker.named_modules() if isinstance(m, LoraLayer)}
    if not layers:
        return state
    deltas: dict[str, torch.Tensor] = {}  # plain parameter key -> the update of its expert LoRA
    for owner, layer in layers.items():
        if isinstance(layer, ParamWrapper):
            target = f"{plain_key(owner + '.')}{layer.parameter_name}"
            for name in layer.active_adapters:
                a, b = state[f"{owner}.lora_A.{name}.weight"], state[f"{owner}.lora_B.{name}.weight"]
                d = _expert_delta(layer, a, b, name)
                deltas[target] = d if target not in deltas else deltas[target] + d
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if "lora_" in key:
            continue
        owner = key.rsplit(".base_layer.", 1)[0] if ".base_layer." in key else None
        layer = layers.get(owner)
        if layer is not None and not isinstance(layer, ParamWrapper) and key.endswith(".base_layer.weight"):
            for name in layer.active_adapters:
                a, b = state[f"{owner}.lora_A.{name}.weight"], state[f"{owner}.lora_B.{name}.weight"]
                value = value + (layer.scaling[name] * (b.float() @ a.float())).to(value.dtype)
        plain = plain_key(key)
        if plain in deltas:
            value = value + deltas[plain].to(value.dtype)
        out[plain] = value.detach().clone()
    return out
