"""From a sample's media to what the model reads: the processor's tensors (frames, log-mel features) and the
token strings that stand for them in the prompt.

:class:`MediaEncoder` is the media half of :class:`~latentomni.data.collate.SampleEncoder` (which lays out the
text, the variant and the latent slots): it decodes the clip window (:mod:`.media`, PyAV), runs the processor's
video processor and Whisper feature extractor, applies the test-time controls and the audio cap of
:class:`MediaSettings`, and lays out audio-in-video tokens in the model family's layout (the
:class:`~latentomni.model.backbone.Backbone` says how). Many questions share one clip, and decoding plus feature
extraction cost more than a tiny model's step, so processed media are kept in a small LRU keyed by file, clip
window and settings.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ..model.backbone import Backbone
from .media import AUDIO_SAMPLE_RATE, MediaError, decode_audio, decode_video
from .schema import TrainingSample, resolve_media

MIN_AUDIO_SECONDS = 0.05  # a shorter track yields no audio token worth attending to


class MediaSettings(BaseModel):
    """How media become tokens. Saved with every training and evaluation run."""

    model_config = ConfigDict(extra="forbid")
    fps: float = Field(default=2.0, gt=0)
    max_frames: int = Field(default=256, ge=2)
    max_pixels: int = Field(default=448 * 448, ge=28 * 28)
    use_audio_in_video: bool = True
    zero_audio: bool = False  # controls: silence the audio at test time
    zero_video: bool = False  # controls: black frames at test time
    # Seconds of audio given to the model, from the clip's start; None keeps the whole track. Long videos
    # (LVOmniBench runs 10-90 minutes, 25 audio tokens a second) may need a cap to fit the context; a cut
    # is warned about and, like every field here, recorded in the run's settings.
    max_audio_seconds: float | None = Field(default=None, gt=0)


class MediaEncoder:
    """Media of a :class:`TrainingSample` to processor tensors and prompt token strings (see the module)."""

    def __init__(self, processor, settings: MediaSettings, backbone: Backbone, media_cache_size: int = 0):
        self.processor, self.settings = processor, settings
        # The model family's facts (audio token count, audio-in-video layout), bound to its thinker config: the
        # layout interleaves video and audio tokens at that config's TMRoPE time scale.
        self.backbone = backbone
        self._cache: OrderedDict[tuple, tuple[dict, dict]] = OrderedDict()
        self.media_cache_size = media_cache_size

    def encode(self, sample: TrainingSample, base_dir: Path) -> tuple[dict, dict]:
        """The sample's media tensors and the token strings that replace ``<|VIDEO|>`` / ``<|AUDIO|>``,
        from the LRU when the same clip window was encoded under the same settings."""
        if not self.media_cache_size:
            return self._decode(sample, base_dir)
        v, a = sample.video, sample.audio
        key = (str(resolve_media(v.video, base_dir)) if v else None, v.video_start if v else None,
               v.video_end if v else None, str(resolve_media(a.audio, base_dir)) if a else None,
               self.settings.model_dump_json())
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = self._decode(sample, base_dir)
        self._cache[key] = value
        if len(self._cache) > self.media_cache_size:
            self._cache.popitem(last=False)
        return value

    def _decode(self, sample: TrainingSample, base_dir: Path) -> tuple[dict, dict]:
        """Decode media; returns (tensors, token strings replacing <|VIDEO|> / <|AUDIO|>)."""
        tensors: dict = {}
        repl: dict = {}
        tok = self.processor.tokenizer
        video, audio_part = sample.video, sample.audio
        wave = None
        if video is not None:
            path = resolve_media(video.video, base_dir)
            clip = decode_video(path, self.settings.fps, self.settings.max_frames, self.settings.max_pixels,
                                video.video_start, video.video_end)
            frames = np.zeros_like(clip.frames) if self.settings.zero_video else clip.frames
            vp = self.processor.video_processor(videos=[frames], return_tensors="pt", do_sample_frames=False)
            grid = vp["video_grid_thw"]
            spg = self.processor.video_processor.temporal_patch_size / clip.fps
            tensors.update(pixel_values_videos=vp["pixel_values_videos"], video_grid_thw=grid, second_per_grid=spg)
            n_video = int(grid.prod()) // self.processor.video_processor.merge_size ** 2
            repl["video"] = tok.video_token * n_video
            tensors["duration"] = clip.duration
            tensors["time_offset"] = video.video_start or 0.0
            if self.settings.use_audio_in_video and audio_part is None:
                wave = decode_audio(path, video.video_start, video.video_end)
                if len(wave) < AUDIO_SAMPLE_RATE * MIN_AUDIO_SECONDS:
                    raise MediaError(path, f"audio track shorter than {MIN_AUDIO_SECONDS * 1000:.0f} ms")
        if audio_part is not None:
            path = resolve_media(audio_part.audio, base_dir)
            wave = decode_audio(path)
            tensors.setdefault("duration", len(wave) / AUDIO_SAMPLE_RATE)
        if wave is not None:
            wave = self._cap_audio(wave)
            if self.settings.zero_audio:
                wave = np.zeros_like(wave)
            feats = whisper_features(self.processor.feature_extractor, wave)
            tensors["input_features"] = feats
            n_audio = self.backbone.audio_token_count(feats.shape[-1])
            if video is not None and audio_part is None:
                repl["video"] = self._interleave(tensors["video_grid_thw"][0], tensors["second_per_grid"], n_audio)
            else:
                repl["audio"] = tok.audio_token * n_audio
        return tensors, repl

    def _cap_audio(self, wave: np.ndarray) -> np.ndarray:
        """The first ``max_audio_seconds`` of the wave, with a warning that the model hears less than the
        video shows (shown once: the message names the setting, not the file)."""
        cap = self.settings.max_audio_seconds
        if cap is None or len(wave) <= round(cap * AUDIO_SAMPLE_RATE):
            return wave
        warnings.warn(f"audio longer than max_audio_seconds={cap:g} s is cut to its first {cap:g} s; set the media "
                      "setting max_audio_seconds to null to keep the whole track", stacklevel=2)
        return wave[: round(cap * AUDIO_SAMPLE_RATE)]

    def _interleave(self, grid: torch.Tensor, second_per_grid: float, n_audio: int) -> str:
        """Video and audio tokens of an audio-in-video, in the family's layout (Qwen2.5-Omni: 2-second chunks;
        Qwen3-Omni: token by token), at this encoder's TMRoPE time scale."""
        return self.backbone.audio_in_video_layout(self.processor, grid, second_per_grid, n_audio)


def whisper_features(feature_extractor, wave: np.ndarray) -> torch.Tensor:
    """(n_mels, frames) log-mel features of a 16 kHz mono wave, without the extractor's padding, for the
    whole wave (100 frames, i.e. 25 audio tokens, a second).

    The extractor silently cuts its input at ``chunk_length`` (300 s for Qwen2.5-Omni), and so does the
    Hugging Face processor. The audio tower itself takes any length: it attends within windows of
    ``2 * n_window`` frames (2 s). So a longer wave is featurised in consecutive ``chunk_length`` pieces,
    each scaled exactly as the extractor scales one input, and the pieces are concatenated; a wave up to
    ``chunk_length`` gives exactly the extractor's own features."""
    n = feature_extractor.n_samples
    starts = list(range(0, max(len(wave), 1), n))
    if len(starts) > 1 and len(wave) - starts[-1] < feature_extractor.n_fft:
        starts.pop()  # a sliver too short for one STFT window joins the piece before it
    pieces = []
    for a, b in zip(starts, [*starts[1:], len(wave)], strict=True):
        fe = feature_extractor([wave[a:b]], sampling_rate=AUDIO_SAMPLE_RATE, return_attention_mask=True,
                               padding="longest", truncation=False, return_tensors="pt")
        pieces.append(fe["input_features"][0][:, : int(fe["attention_mask"][0].sum())])
    return torch.cat(pieces, dim=-1)
