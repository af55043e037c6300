"""From a :class:`TrainingSample` to model inputs, and from encoded samples to a padded batch.

One encoder serves training (teacher-forced sequences with latent slots and labels) and inference (the
prompt alone), so the prompt, the media token layout and the latent block layout cannot drift apart.

Layout of the assistant turn for the ``latent`` variant::

    <|im_start|>assistant\\n  text  <Unified_Latent> <|latent|>*K </Unified_Latent>  text ... \\boxed{B} <|im_end|>
    (no target)              (CE)   (CE: trigger)    (slots: L_latent) (no CE)        (CE)               (CE)

Media tokens are laid out exactly as the model family's processor lays them out when ``use_audio_in_video``
(Qwen2.5-Omni: audio interleaved with video in 2-second chunks; Qwen3-Omni: token by token in time order), using
the processor's own pieces; the family's facts (audio token counts, the layout) come from the model's
:class:`~latentomni.model.backbone.Backbone`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ..config import LatentConfig
from ..model.backbone import Backbone
from ..model.tokens import LatentTokenIds
from .features import MediaEncoder, MediaSettings
from .media import MediaError
from .schema import AudioPart, LatentPart, TextPart, TrainingSample, VideoPart, resolve_media

Variant = Literal["latent", "text_cot", "vanilla"]
VARIANTS: tuple[Variant, ...] = ("latent", "text_cot", "vanilla")
IGNORE_INDEX = -100


@dataclass
class EncodedSample:
    sample_id: str
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where no CE target
    slot_index: list[int]  # k in [0, K) at latent slots, -1 elsewhere
    windows: list[tuple[float, float]]  # one per latent block, in order
    pixel_values_videos: torch.Tensor | None = None
    video_grid_thw: torch.Tensor | None = None  # (1, 3)
    second_per_grid: float | None = None
    input_features: torch.Tensor | None = None  # (n_mels, frames)
    meta: dict = field(default_factory=dict)
    # Every segment of the clip, relative to the encoded media (the cited windows among them): the
    # candidates the contrastive latent loss and the retrieval diagnostic tell the cited one apart from.
    segments: list[tuple[float, float]] = field(default_factory=list)
    clip_key: str = ""  # which media the windows refer to: samples of one clip share their segments


def apply_variant(sample: TrainingSample, variant: Variant) -> list[TextPart | LatentPart]:
    """The assistant parts for a training variant (paper Sec. 4.1): ``latent`` keeps the latent blocks,
    ``text_cot`` removes them and keeps the text reasoning, ``vanilla`` answers directly."""
    parts = sample.assistant.content
    if variant == "latent":
        return [p for p in parts if isinstance(p, TextPart | LatentPart)]
    if variant == "text_cot":
        texts = [p.text.strip() for p in parts if isinstance(p, TextPart) and p.text.strip()]
        return [TextPart(text=" ".join(texts))]
    if variant == "vanilla":
        return [TextPart(text=f"\\boxed{{{sample.answer}}}")]
    raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")


class SampleEncoder:
    """Turns samples into :class:`EncodedSample`: the chat template, the variant's assistant turn and the latent
    slots, with the media tensors and token strings of a :class:`~.features.MediaEncoder`."""

    def __init__(self, processor, latent: LatentConfig, token_ids: LatentTokenIds, media: MediaSettings,
                 backbone: Backbone, system_prompt: str | None = None, media_cache_size: int = 0):
        self.processor, self.latent, self.ids, self.media = processor, latent, token_ids, media
        self.tokenizer = processor.tokenizer
        self.system_prompt = system_prompt
        # The media half (decoding, features, audio-in-video layout, the clip LRU): .features.MediaEncoder.
        self.media_encoder = MediaEncoder(processor, media, backbone, media_cache_size)

    @classmethod
    def for_model(cls, model, media: MediaSettings, **kwargs) -> SampleEncoder:
        """The encoder for a :class:`~latentomni.model.wrapper.LatentOmniModel`: its processor, latent config
        and token ids, and its backbone (the family's token rates, audio-in-video layout and TMRoPE time scale,
        read from its thinker config, so tokens interleave as it expects)."""
        return cls(model.processor, model.latent, model.token_ids, media, model.backbone, **kwargs)

    # -- text -------------------------------------------------------------------------------------------
    def _prompt_messages(self, sample: TrainingSample) -> list[dict]:
        msgs = [m.model_dump(exclude_none=True) for m in sample.messages[:-1]]
        if self.system_prompt is not None and not any(m["role"] == "system" for m in msgs):
            msgs.insert(0, {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        return msgs

    def encode(self, sample: TrainingSample, base_dir: str | Path, variant: Variant = "latent",
               for_generation: bool = False) -> EncodedSample:
        """Encode one sample. Raises :class:`MediaError` (per-sample, skippable) on bad media or windows."""
        base_dir = Path(base_dir)
        tensors, repl = self.media_encoder.encode(sample, base_dir)
        prompt = self.processor.apply_chat_template(self._prompt_messages(sample), tokenize=False,
                                                    add_generation_prompt=True)
        tok = self.tokenizer
        if "video" in repl:
            prompt = prompt.replace(tok.video_token, repl["video"], 1)
        if "audio" in repl:
            prompt = prompt.replace(tok.audio_token, repl["audio"], 1)
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        labels = [IGNORE_INDEX] * len(ids)
        slots = [-1] * len(ids)
        windows: list[tuple[float, float]] = []
        if not for_generation:
            for part in apply_variant(sample, variant):
                if isinstance(part, TextPart):
                    piece = tok(part.text, add_special_tokens=False)["input_ids"]
                    ids += piece
                    labels += piece
                    slots += [-1] * len(piece)
                else:
                    if not self.latent.latent_mode:  # a train config cannot get here (its variant sets the mode)
                        raise ValueError(f"sample {sample.id}: variant 'latent' writes latent blocks, but this "
                                         "encoder's model has latent_mode off; encode it as text_cot or vanilla")
                    windows.append(self._check_window(part, tensors, sample))
                    k = self.latent.num_latents
                    ids += [self.ids.start] + [self.ids.slot] * k + [self.ids.end]
                    labels += [self.ids.start] + [IGNORE_INDEX] * (k + 1)
                    slots += [-1, *list(range(k)), -1]
            end = tok.convert_tokens_to_ids("<|im_end|>")
            ids.append(end)
            labels.append(end)
            slots.append(-1)
        return EncodedSample(
            sample_id=sample.id, input_ids=ids, labels=labels, slot_index=slots, windows=windows,
            segments=self._segments(sample, tensors, windows), clip_key=self._clip_key(sample, base_dir),
            pixel_values_videos=tensors.get("pixel_values_videos"), video_grid_thw=tensors.get("video_grid_thw"),
            second_per_grid=tensors.get("second_per_grid"), input_features=tensors.get("input_features"),
            meta={"duration": tensors.get("duration"), "audio_in_video": "video" in repl and "audio" not in repl
                  and tensors.get("input_features") is not None},
        )

    @staticmethod
    def _clip_key(sample: TrainingSample, base_dir: Path) -> str:
        v, a = sample.video, sample.audio
        if v is not None:
            return f"{resolve_media(v.video, base_dir)}[{v.video_start}:{v.video_end}]"
        return str(resolve_media(a.audio, base_dir)) if a is not None else ""

    @staticmethod
    def _segments(sample: TrainingSample, tensors: dict,
                  windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """The clip's segments relative to the encoded media: ``meta["segments"]`` ([start, end] seconds of the
        question media, as the synthetic world writes them) when the sample carries it, plus the cited
        windows; a sample without it knows only its cited windows. Segments outside the media are dropped."""
        duration, offset = tensors.get("duration"), tensors.get("time_offset", 0.0)
        out: list[tuple[float, float]] = []
        for i, seg in enumerate(sample.meta.get("segments") or []):
            if not (isinstance(seg, list | tuple) and len(seg) == 2 and float(seg[1]) > float(seg[0])):
                raise ValueError(f"sample {sample.id}: meta.segments[{i}] must be [start, end] seconds with "
                                 f"end > start, got {seg!r}")
            start, end = float(seg[0]) - offset, float(seg[1]) - offset
            if end <= 0 or (duration is not None and start >= duration):
                continue
            out.append((max(start, 0.0), min(end, duration) if duration is not None else end))
        for w in windows:
            if not any(abs(w[0] - a) < 1e-6 and abs(w[1] - b) < 1e-6 for a, b in out):
                out.append(w)
        return out

    @staticmethod
    def _check_window(part: LatentPart, tensors: dict, sample: TrainingSample) -> tuple[float, float]:
        """The block's window relative to the encoded clip (a clipped video starts at its video_start)."""
        duration, offset = tensors.get("duration"), tensors.get("time_offset", 0.0)
        start, end = part.start - offset, part.end - offset
        if duration is not None and (start >= duration or end <= 0):
            raise MediaError(
                sample.video.video if sample.video else sample.audio.audio,
                f"sample {sample.id}: latent window [{part.start}, {part.end}) s of segment {part.segment} "
                f"lies outside the media ({duration:.2f} s)",
                kind="window outside media",
            )
        return (max(start, 0.0), min(end, duration) if duration is not None else end)


def batch_to(batch: dict, device: torch.device | str) -> dict:
    """A collated batch with its tensors on ``device`` (ids, lists and flags stay as they are)."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def pad_features(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (n_mels, frames) features to one batch; returns (features, feature_attention_mask)."""
    frames = max(f.shape[-1] for f in features)
    feats = torch.zeros(len(features), features[0].shape[0], frames)
    mask = torch.zeros(len(features), frames, dtype=torch.long)
    for j, f in enumerate(features):
        feats[j, :, : f.shape[-1]] = f
        mask[j, : f.shape[-1]] = 1
    return feats, mask


def _segment_table(batch: list[EncodedSample]) -> dict[str, torch.Tensor]:
    """The distinct clip segments of a batch (samples of one clip share them): ``segment_windows`` (S, 2)
    seconds, ``segment_owner`` (S,) a sample whose media holds it, ``segment_clip`` (S,) the clip's index
    among the batch's distinct clips, and ``block_segment`` (n_blocks,) the row of each block's cited window."""
    rows: dict[tuple[str, float, float], int] = {}
    clips: dict[str, int] = {}
    windows, owners, clip_of, cited = [], [], [], []
    for i, e in enumerate(batch):
        c = clips.setdefault(e.clip_key or f"#sample{i}", len(clips))
        key_of = {}
        for w in [*e.segments, *e.windows]:
            key = (e.clip_key or f"#sample{i}", round(w[0], 6), round(w[1], 6))
            if key not in rows:
                rows[key] = len(windows)
                windows.append(w)
                owners.append(i)
                clip_of.append(c)
            key_of[w] = rows[key]
        cited += [key_of[w] for w in e.windows]
    return {
        "segment_windows": torch.tensor(windows, dtype=torch.float64).reshape(-1, 2),
        "segment_owner": torch.tensor(owners, dtype=torch.long),
        "segment_clip": torch.tensor(clip_of, dtype=torch.long),
        "block_segment": torch.tensor(cited, dtype=torch.long),
    }


def collate(batch: list[EncodedSample], pad_id: int, padding_side: Literal["left", "right"] = "right") -> dict:
    """Pad a list of encoded samples into model inputs (plus the latent bookkeeping the wrapper needs)."""
    n = len(batch)
    width = max(len(e.input_ids) for e in batch)

    def pad(rows: list[list[int]], value: int) -> torch.Tensor:
        out = torch.full((n, width), value, dtype=torch.long)
        for i, r in enumerate(rows):
            if padding_side == "right":
                out[i, : len(r)] = torch.tensor(r)
            else:
                out[i, width - len(r):] = torch.tensor(r)
        return out

    out: dict = {
        "input_ids": pad([e.input_ids for e in batch], pad_id),
        "attention_mask": pad([[1] * len(e.input_ids) for e in batch], 0),
        "labels": pad([e.labels for e in batch], IGNORE_INDEX),
        "slot_index": pad([e.slot_index for e in batch], -1),
        "block_windows": torch.tensor([w for e in batch for w in e.windows], dtype=torch.float64).reshape(-1, 2),
        "block_owner": torch.tensor([i for i, e in enumerate(batch) for _ in e.windows], dtype=torch.long),
        "sample_ids": [e.sample_id for e in batch],
        **_segment_table(batch),
    }
    in_video = {bool(e.meta.get("audio_in_video")) for e in batch if e.pixel_values_videos is not None}
    if len(in_video) > 1:
        raise ValueError("a batch mixes videos with and without audio-in-video; Qwen-Omni positions need one mode")
    out["use_audio_in_video"] = in_video == {True}
    videos = [(i, e) for i, e in enumerate(batch) if e.pixel_values_videos is not None]
    if videos:
        out["pixel_values_videos"] = torch.cat([e.pixel_values_videos for _, e in videos])
        out["video_grid_thw"] = torch.cat([e.video_grid_thw for _, e in videos])
        out["video_second_per_grid"] = torch.tensor([e.second_per_grid for _, e in videos])
        out["video_owner"] = torch.tensor([i for i, _ in videos])
    audios = [(i, e) for i, e in enumerate(batch) if e.input_features is not None]
    if audios:
        out["input_features"], out["feature_attention_mask"] = pad_features([e.input_features for _, e in audios])
        out["audio_owner"] = torch.tensor([i for i, _ in audios])
    return out


__all__ = [
    "IGNORE_INDEX", "VARIANTS", "AudioPart", "EncodedSample", "MediaSettings", "SampleEncoder", "VideoPart",
    "apply_variant", "collate",
]
