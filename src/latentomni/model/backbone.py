"""The model families LatentOmni runs on, one small class each, owning every fact that differs between them.

The latent method itself (anchors, OSPE offsets, the attention rule, the losses, the decoding state machine) is
family-free. What is not lives here and only here: the Hugging Face model, processor and config classes; the
audio token rate and the TMRoPE time scale (read from the checkpoint's config, never assumed); how audio tokens
map to seconds; the audio-in-video token layout; the rope-index call; DeepStack inputs; the mixture-of-experts
router's auxiliary loss; and the LoRA targets. :func:`backbone_for` picks the family from a checkpoint's config.

* :class:`Qwen25Omni` -- Qwen2.5-Omni (3B, 7B). Audio: 25 tokens a second (one per 40 ms); TMRoPE 25 ids a
  second; audio-in-video interleaves 2-second chunks of video and audio tokens. Dense text model.
* :class:`Qwen3Omni` -- Qwen3-Omni (30B-A3B). Audio: the encoder works on 1-second windows of 100 mel frames
  and emits 13 tokens per window (80 ms apart, the last one cut at the window's end); TMRoPE 13 ids a second in
  the released config (the processor's default is 13, the config class's 25: the config decides). Audio-in-video
  interleaves video and audio tokens one by one by their TMRoPE time, inside nested vision/audio markers.
  The text model is a mixture of experts (a router auxiliary loss) and takes DeepStack visual features.

Nothing of transformers is copied: every call goes to the unmodified classes (their ``get_rope_index``, their
processor's own ``replace_video_with_audio_token``, their ``load_balancing_loss_func``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch


@dataclass
class DeepStackInputs:
    """DeepStack inputs of a text-model call (Qwen3-Omni): ``visual_mask`` (B, L) marks the visual tokens, and
    ``features`` holds, per DeepStack layer, one row per marked token in row-major order -- the features of the
    vision tower's intermediate layers that the text model adds to the hidden states of its first layers at
    those tokens (``visual_pos_masks``, ``deepstack_visual_embeds``)."""

    visual_mask: torch.Tensor
    features: list[torch.Tensor]

    def kwargs(self) -> dict:
        """Keyword arguments for the text model's forward."""
        return {"visual_pos_masks": self.visual_mask, "deepstack_visual_embeds": self.features}

    def gather(self, index: torch.Tensor, valid: torch.Tensor) -> DeepStackInputs | None:
        """The inputs of a chunk whose (B, Q) inputs are the sequence's positions ``index`` (``valid`` marks the
        real ones): the decoding loop's rollout feeds a sequence chunk by chunk. None when the chunk holds no
        visual token (the text model then adds nothing)."""
        row = self.visual_mask.flatten().long().cumsum(0).reshape(self.visual_mask.shape) - 1
        mask = self.visual_mask.gather(1, index) & valid.bool()
        if not mask.any():
            return None
        rows = row.gather(1, index)[mask]
        return DeepStackInputs(mask, [f[rows.to(f.device)] for f in self.features])


def deepstack_kwargs(deepstack: DeepStackInputs | None) -> dict:
    """The text model's DeepStack keyword arguments, none at all without DeepStack (a Qwen2.5-Omni text model
    does not take them)."""
    return deepstack.kwargs() if deepstack is not None else {}


class Backbone:
    """What a model family contributes. One instance per loaded model, bound to its thinker ``config``."""

    family: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]  # config.json model_type values (thinker and full omni model)
    has_router: ClassVar[bool] = False
    has_deepstack: ClassVar[bool] = False
    # peft target modules of the text model for LoRA (names of nn.Linear children).
    lora_targets: ClassVar[tuple[str, ...]] = ("q_proj", "k_proj", "v_proj", "o_proj")
    # Fused expert parameters LoRA may adapt (training.lora.target_parameters); none for a dense text model.
    lora_expert_parameters: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config):
        self.config = config

    # -- classes ----------------------------------------------------------------------------------------
    @classmethod
    def thinker_class(cls):
        raise NotImplementedError

    @classmethod
    def processor_class(cls):
        raise NotImplementedError

    @classmethod
    def load_thinker(cls, path: str | Path, **kwargs):
        """The family's unmodified thinker from a checkpoint folder, with Hub kernels off: from transformers 5.25
        ``from_pretrained`` swaps layers for kernels downloaded from the Hub by default, which fails on an
        offline node and changes the numerics the tests pin; 5.24 takes the same switch (default off)."""
        return cls.thinker_class().from_pretrained(str(path), **{"use_kernels": False, **kwargs})

    @classmethod
    def load(cls, path: str | Path, **kwargs):
        """(thinker, processor) from a checkpoint folder, the thinker prepared by :meth:`prepare_config`."""
        thinker = cls.load_thinker(path, **kwargs)
        processor = cls.processor_class().from_pretrained(str(path))
        cls.prepare_config(thinker.config, processor.tokenizer)
        return thinker, processor

    @classmethod
    def prepare_config(cls, config, tokenizer) -> None:
        """Fill in config fields the family's code reads but its config class may lack."""

    # -- time scales ------------------------------------------------------------------------------------
    @property
    def position_ids_per_second(self) -> float:
        """TMRoPE's time scale: temporal position ids per second of media, from the thinker config."""
        return float(self.config.position_id_per_seconds)

    @property
    def audio_tokens_per_second(self) -> float:
        raise NotImplementedError

    def audio_token_count(self, n_frames: int) -> int:
        """Audio tokens the audio tower emits for ``n_frames`` mel frames (100 a second)."""
        raise NotImplementedError

    def audio_token_spans(self, num_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(start, end) seconds of each of ``num_tokens`` audio tokens of one track, float64."""
        raise NotImplementedError

    def audio_feature_lengths(self, thinker, feature_attention_mask: torch.Tensor) -> list[int]:
        """Audio tokens of each track of a batch (the audio features come concatenated)."""
        raise NotImplementedError

    # -- layout and positions ---------------------------------------------------------------------------
    def audio_in_video_layout(self, processor, grid_thw: torch.Tensor, second_per_grid: float, n_audio: int,
                              position_id_per_seconds: float | None = None,
                              seconds_per_chunk: float | None = None) -> str:
        """The token string replacing a video's placeholder when its own audio track comes with it; the time
        scales default to the thinker config's."""
        raise NotImplementedError

    def rope_index(self, thinker, batch: dict) -> torch.Tensor:
        """(3, B, L) TMRoPE positions of a collated batch: the family's own ``get_rope_index``."""
        fmask = batch.get("feature_attention_mask")
        positions, _ = thinker.model.get_rope_index(
            batch["input_ids"], None, batch.get("video_grid_thw"), batch["attention_mask"],
            bool(batch.get("use_audio_in_video", False)),
            fmask.sum(-1) if fmask is not None else None, batch.get("video_second_per_grid"),
        )
        return positions

    # -- encoders and the text model ----------------------------------------------------------------------
    def video_features(self, thinker, pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor):
        """(per-video LLM-space features, per-layer per-video DeepStack features or None)."""
        out = thinker.model.get_video_features(pixel_values_videos, video_grid_thw, return_dict=True)
        return list(out.pooler_output), None

    def router_aux_loss(self, router_logits, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """The mixture-of-experts load-balancing loss of a text-model pass; None for a dense model."""
        return None


class Qwen25Omni(Backbone):
    """Qwen2.5-Omni (3B, 7B): dense text model, 25 audio tokens a second, 2-second audio-in-video chunks."""

    family = "qwen2.5-omni"
    model_types = ("qwen2_5_omni_thinker", "qwen2_5_omni")
    AUDIO_TOKENS_PER_SECOND: ClassVar[float] = 25.0  # one audio token per 40 ms

    @classmethod
    def thinker_class(cls):
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration
        return Qwen2_5OmniThinkerForConditionalGeneration

    @classmethod
    def processor_class(cls):
        from transformers import Qwen2_5OmniProcessor
        return Qwen2_5OmniProcessor

    @property
    def audio_tokens_per_second(self) -> float:
        return self.AUDIO_TOKENS_PER_SECOND

    def audio_token_count(self, n_frames: int) -> int:
        """Whisper's 100 frames a second, halved by the conv and again by the pooling (2x conv, 2x pool)."""
        return ((n_frames - 1) // 2 + 1 - 2) // 2 + 1

    def audio_token_spans(self, num_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.arange(num_tokens, dtype=torch.float64) / self.AUDIO_TOKENS_PER_SECOND
        return starts, starts + 1.0 / self.AUDIO_TOKENS_PER_SECOND

    def audio_feature_lengths(self, thinker, feature_attention_mask: torch.Tensor) -> list[int]:
        return thinker.model.audio_tower._get_feat_extract_output_lengths(feature_attention_mask.sum(-1))[1].tolist()

    def audio_in_video_layout(self, processor, grid_thw: torch.Tensor, second_per_grid: float, n_audio: int,
                              position_id_per_seconds: float | None = None,
                              seconds_per_chunk: float | None = None) -> str:
        """Video and audio tokens in ``seconds_per_chunk`` (2 s) chunks, as Qwen2.5-Omni's processor lays them
        out, with the processor's own ``get_chunked_index``."""
        import numpy as np

        tok = processor.tokenizer
        merge = processor.video_processor.merge_size
        t, h, w = (int(x) for x in grid_thw)
        per_t = (h // merge) * (w // merge)
        pps = position_id_per_seconds if position_id_per_seconds is not None else self.config.position_id_per_seconds
        spc = seconds_per_chunk if seconds_per_chunk is not None else self.config.seconds_per_chunk
        video_idx = np.repeat(np.arange(t), per_t) * second_per_grid * pps
        tokens_per_chunk = int(pps * spc)
        vchunks = processor.get_chunked_index(video_idx, tokens_per_chunk)
        achunks = processor.get_chunked_index(np.arange(n_audio), tokens_per_chunk)
        out = [tok.audio_bos_token]
        for j in range(max(len(vchunks), len(achunks))):
            if j < len(vchunks):
                out.append(tok.video_token * (vchunks[j][1] - vchunks[j][0]))
            if j < len(achunks):
                out.append(tok.audio_token * (achunks[j][1] - achunks[j][0]))
        out.append(tok.audio_eos_token)
        return "".join(out)


class Qwen3Omni(Backbone):
    """Qwen3-Omni (30B-A3B): mixture-of-experts text model with DeepStack, ~13 audio tokens a second, audio and
    video tokens interleaved one by one by TMRoPE time."""

    family = "qwen3-omni"
    model_types = ("qwen3_omni_moe_thinker", "qwen3_omni_moe")
    has_router = True
    has_deepstack = True
    # Attention projections are nn.Linear; the experts are fused 3-D parameters (mlp.experts.gate_up_proj,
    # mlp.experts.down_proj), which LoRA reaches through peft's target_parameters (training.lora.target_parameters,
    # train/lora.py); the router (mlp.gate) is left alone: adapting it shifts the load balance the aux loss keeps.
    lora_targets = ("q_proj", "k_proj", "v_proj", "o_proj")
    lora_expert_parameters: ClassVar[tuple[str, ...]] = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")
    MEL_FRAMES_PER_SECOND: ClassVar[int] = 100
    FRAMES_PER_TOKEN: ClassVar[int] = 8  # three stride-2 convolutions

    @classmethod
    def thinker_class(cls):
        from transformers import Qwen3OmniMoeThinkerForConditionalGeneration
        return Qwen3OmniMoeThinkerForConditionalGeneration

    @classmethod
    def processor_class(cls):
        from transformers import Qwen3OmniMoeProcessor
        return Qwen3OmniMoeProcessor

    @classmethod
    def prepare_config(cls, config, tokenizer) -> None:
        """``get_rope_index`` (and thus ``generate``) reads ``vision_start_token_id``, which the thinker config
        class does not declare; a config without it gets it from the tokenizer's vision start token (likewise
        the end markers, and the processor's 2-second chunk length for completeness)."""
        for field, attr in (("vision_start_token_id", "vision_bos_token"), ("vision_end_token_id", "vision_eos_token"),
                            ("audio_end_token_id", "audio_eos_token")):
            if getattr(config, field, None) is None and getattr(tokenizer, attr, None) is not None:
                setattr(config, field, tokenizer.convert_tokens_to_ids(getattr(tokenizer, attr)))
        if getattr(config, "seconds_per_chunk", None) is None:
            config.seconds_per_chunk = 2

    @property
    def n_window(self) -> int:
        return int(self.config.audio_config.n_window)

    @property
    def audio_tokens_per_second(self) -> float:
        """Tokens per 1-second window of ``2 * n_window`` mel frames (13 for the released model)."""
        return float(self.audio_token_count(2 * self.n_window))

    def audio_token_count(self, n_frames: int) -> int:
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import _get_feat_extract_output_lengths
        return int(_get_feat_extract_output_lengths(torch.tensor(n_frames), self.n_window))

    def audio_token_spans(self, num_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder convolves each window of ``2 * n_window`` frames on its own: token i of window c covers
        mel frames [8i, 8i + 8) of that window (cut at the window's end), i.e. starts at c + 0.08 i seconds."""
        per_window = int(self.audio_tokens_per_second)
        window_seconds = 2 * self.n_window / self.MEL_FRAMES_PER_SECOND
        n = torch.arange(num_tokens, dtype=torch.float64)
        c, i = torch.div(n, per_window, rounding_mode="floor"), torch.remainder(n, per_window)
        step = self.FRAMES_PER_TOKEN / self.MEL_FRAMES_PER_SECOND
        starts = c * window_seconds + i * step
        ends = torch.minimum(starts + step, (c + 1) * window_seconds)
        return starts, ends

    def audio_feature_lengths(self, thinker, feature_attention_mask: torch.Tensor) -> list[int]:
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import _get_feat_extract_output_lengths
        return _get_feat_extract_output_lengths(feature_attention_mask.sum(-1), self.n_window).tolist()

    def audio_in_video_layout(self, processor, grid_thw: torch.Tensor, second_per_grid: float, n_audio: int,
                              position_id_per_seconds: float | None = None,
                              seconds_per_chunk: float | None = None) -> str:
        """The processor's own ``replace_video_with_audio_token``: each temporal patch's video tokens at its
        start time, the audio tokens (one TMRoPE id each) up to the next patch, inside the audio markers (the
        chat template's vision markers enclose them), at the config's ``position_id_per_seconds``; there are no
        chunks (``seconds_per_chunk`` is not read)."""
        pps = position_id_per_seconds if position_id_per_seconds is not None else self.config.position_id_per_seconds
        return processor.replace_video_with_audio_token(
            {"video_grid_thw": grid_thw.reshape(1, 3), "video_second_per_grid": [second_per_grid]}, 0,
            {"num_audio_tokens": [n_audio]}, 0, position_id_per_seconds=pps)

    def video_features(self, thinker, pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor):
        out = thinker.model.get_video_features(pixel_values_videos, video_grid_thw, return_dict=True)
        return list(out.pooler_output), [list(layer) for layer in out.deepstack_features]

    def router_aux_loss(self, router_logits, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Switch-Transformer load balancing over every MoE layer, padding excluded: transformers' own
        ``load_balancing_loss_func``, as the thinker's forward computes its ``aux_loss``."""
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import load_balancing_loss_func

        if not router_logits:
            return None
        text = self.config.text_config
        return load_balancing_loss_func(tuple(router_logits), text.num_experts, text.num_experts_per_tok,
                                        attention_mask)


FAMILIES: tuple[type[Backbone], ...] = (Qwen25Omni, Qwen3Omni)


def backbone_class(model_type: str) -> type[Backbone]:
    """The family of a config's ``model_type``."""
    for cls in FAMILIES:
        if model_type in cls.model_types:
            return cls
    known = ", ".join(t for c in FAMILIES for t in c.model_types)
    raise ValueError(f"model_type {model_type!r} is not a supported backbone (known: {known})")


def backbone_for(config) -> Backbone:
    """The backbone of a thinker config object, or of a checkpoint folder (its config, no weights, is read)."""
    if isinstance(config, str | Path):
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(config))
        config = getattr(config, "thinker_config", config)  # a full omni checkpoint: its thinker's config
    return backbone_class(config.model_type)(config)


def checkpoint_model_type(path: str | Path) -> str:
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        raise FileNotFoundError(f"{path} has no config.json (not a Hugging Face checkpoint)")
    return json.loads(cfg.read_text())["model_type"]
