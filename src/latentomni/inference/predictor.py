"""Running a trained LatentOmni model: the predictor the evaluator and ``latentomni infer``
(:mod:`latentomni.inference.cli`) use.

Decoding is greedy by default. The Qwen-Omni thinker's own generation config samples, which makes two runs
of the same benchmark disagree; every setting that changes a reply is in :meth:`LatentOmniPredictor.settings`
and is saved beside each evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..data.collate import SampleEncoder, batch_to, collate
from ..data.features import MediaSettings
from ..data.media import MediaError
from ..data.questions import prompt_sample, render_question
from ..model.generate import GenerationConfig, GenerationOutput, generate


class LatentOmniPredictor:
    """Answers evaluation items (``latentomni.data.questions.EvalItem``) with latent-aware generation.

    Benchmarks ask several questions about one clip, and decoding plus feature extraction costs more than
    answering; processed media are therefore kept in the encoder's own LRU (``SampleEncoder``'s
    ``media_cache_size``, keyed by file, clip window and media settings), ``media_cache_size`` clips per
    audio layout. A clip at the default settings (256 frames of 448x448) is about 0.6 GB of pixel values, so
    the cache is small: questions about one clip come one after another in every benchmark file.
    """

    def __init__(self, model_dir: str, fps: float = 2.0, max_frames: int = 256, max_pixels: int = 448 * 448,
                 use_audio_in_video: bool = True, prefer_separate_audio: bool = False,
                 system_prompt: str | None = None, max_new_tokens: int = 512, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, seed: int | None = None,
                 max_latent_blocks: int = 4, attention_flow: str | None = None, dtype: str = "auto",
                 device: str = "auto", attn_implementation: str | None = None, media_cache_size: int = 4,
                 max_audio_seconds: float | None = None, zero_audio: bool = False, zero_video: bool = False):
        from ..model.wrapper import LatentOmniModel, resolve_dtype

        overrides = {"attention_flow": attention_flow} if attention_flow else {}
        model = LatentOmniModel.from_pretrained(model_dir, dtype=resolve_dtype(dtype),
                                                attn_implementation=attn_implementation, **overrides)
        dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        model.to(dev).eval()
        media = MediaSettings(fps=fps, max_frames=max_frames, max_pixels=max_pixels,
                              use_audio_in_video=use_audio_in_video, max_audio_seconds=max_audio_seconds,
                              zero_audio=zero_audio, zero_video=zero_video)
        gen = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature,
                               top_p=top_p, top_k=top_k, seed=seed, max_latent_blocks=max_latent_blocks)
        self._attach(model, str(model_dir), media, gen, prefer_separate_audio=prefer_separate_audio,
                     system_prompt=system_prompt, dtype=dtype, media_cache_size=media_cache_size)

    @classmethod
    def from_model(cls, model, name: str, media: MediaSettings, gen: GenerationConfig, *,
                   system_prompt: str | None = None, prefer_separate_audio: bool = False,
                   media_cache_size: int = 4) -> LatentOmniPredictor:
        """A predictor around a model already in memory (the demo's variants, a model mid-training), left on
        its device; ``name`` stands for the checkpoint in :meth:`settings`. :meth:`predict` puts the model in
        eval mode for the call and gives it back in the mode it found it in."""
        self = cls.__new__(cls)
        self._attach(model, name, media, gen, prefer_separate_audio=prefer_separate_audio,
                     system_prompt=system_prompt, dtype=str(model.thinker.dtype).removeprefix("torch."),
                     media_cache_size=media_cache_size)
        return self

    def _attach(self, model, name: str, media: MediaSettings, gen: GenerationConfig, *, prefer_separate_audio: bool,
                system_prompt: str | None, dtype: str, media_cache_size: int) -> None:
        if media_cache_size < 0:
            raise ValueError(f"media_cache_size must be >= 0, got {media_cache_size}")
        self.model = model
        self.model_dir = name
        self.media = media
        self.prefer_separate_audio = prefer_separate_audio
        self.system_prompt = system_prompt
        self.gen = gen
        self.dtype = dtype
        # Not in settings(): the cache changes how often a clip is decoded, never a reply.
        self.media_cache_size = media_cache_size
        self._encoders: dict[bool, SampleEncoder] = {}  # by use_audio_in_video, each with its media cache
        self._no_audio_track: dict[str, str] = {}  # video -> why it is silent: go straight to vision only

    def settings(self) -> dict[str, Any]:
        lat = self.model.latent
        return {
            "model": self.model_dir, **self.media.model_dump(), "prefer_separate_audio": self.prefer_separate_audio,
            "system_prompt": self.system_prompt, "decoding": vars(self.gen) | {"output_latents": False},
            "latent": {"K": lat.num_latents, "Kv": lat.num_visual, "Ka": lat.num_audio, "ospe": lat.ospe,
                       "latent_mode": lat.latent_mode, "attention_flow": lat.attention_flow},
            "dtype": self.dtype,
        }

    def _encoder(self, use_audio_in_video: bool) -> SampleEncoder:
        """The encoder for one audio layout, built once so its media cache lives as long as the predictor."""
        if use_audio_in_video not in self._encoders:
            media = self.media.model_copy(update={"use_audio_in_video": use_audio_in_video})
            self._encoders[use_audio_in_video] = SampleEncoder.for_model(
                self.model, media, system_prompt=self.system_prompt, media_cache_size=self.media_cache_size)
        return self._encoders[use_audio_in_video]

    def encode(self, question: str, video: Path | None, audio: Path | None, use_audio: bool, sid: str = "q"):
        """Encode one prompt; returns (encoded, mode, note). Audio comes from the video's own track unless
        the item has only a separate audio file (or ``prefer_separate_audio``); a video without an audio
        track falls back to vision only, and says so."""
        separate = audio if (use_audio and audio is not None and (video is None or self.prefer_separate_audio)) \
            else None
        in_video = bool(use_audio and video is not None and separate is None and self.media.use_audio_in_video)
        sample = prompt_sample(question, video, separate, sid)
        reason = self._no_audio_track.get(str(video)) if in_video else None
        if reason is not None:
            return self._encoder(False).encode(sample, Path("."), for_generation=True), False, f"vision only: {reason}"
        try:
            return self._encoder(in_video).encode(sample, Path("."), for_generation=True), in_video, None
        except MediaError as e:
            if in_video and "no audio track" in e.reason:
                enc = self._encoder(False).encode(sample, Path("."), for_generation=True)
                self._no_audio_track[str(video)] = e.reason
                return enc, False, f"vision only: {e.reason}"
            raise

    def generate(self, encoded: list, cfg: GenerationConfig | None = None) -> GenerationOutput:
        pad = self.model.processor.tokenizer.pad_token_id
        batch = collate(encoded, pad, padding_side="left")
        batch = batch_to(batch, self.model.device)
        return generate(self.model, batch, cfg or self.gen)

    @torch.no_grad()
    def predict(self, items: list) -> list[dict[str, Any]]:
        was_training = self.model.training
        self.model.eval()
        try:
            return self._predict(items)
        finally:
            self.model.train(was_training)

    def _predict(self, items: list) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(items)
        groups: dict[bool, list[tuple[int, Any, str | None]]] = {}
        for i, item in enumerate(items):
            try:
                enc, mode, note = self.encode(render_question(item), item.video, item.audio, item.use_audio,
                                              item.qid)
                groups.setdefault(mode, []).append((i, enc, note))
            except (MediaError, ValueError) as e:  # reported as a media error and asked again by a rerun
                results[i] = {"error": " ".join(str(e).split())}
        for members in groups.values():  # one audio layout per batch: both families' rope index take one flag
            out = self.generate([enc for _, enc, _ in members])
            for (i, _, note), text, blocks in zip(members, out.texts, out.num_blocks, strict=True):
                results[i] = {"reply": text, "n_latent_blocks": blocks, **({"note": note} if note else {})}
        return results  # type: ignore[return-value]
