"""The evaluation config: ``latentomni eval --config FILE.yaml`` (every key optional)::

    media:                      # how media become tokens (latentomni.data.collate.MediaSettings)
      fps: 2.0
      max_frames: 256
      max_pixels: 200704
      use_audio_in_video: true
      max_audio_seconds: null
    prefer_separate_audio: false   # a benchmark's separate audio file over the video's own track
    decoding:                   # latentomni.inference.settings.DecodingSettings
      max_new_tokens: 512
      do_sample: false
      temperature: 1.0
      top_p: 1.0
      top_k: 0
      seed: null
      max_latent_blocks: 4
      attention_flow: null      # causal | through_latents; null: the checkpoint's own
    system_prompt: null
    batch_size: 1               # questions per predict() call; --batch-size wins
    dtype: auto
    device: auto
    attn_implementation: null
    media_cache_size: 4         # clips kept decoded (never changes a reply)
    benchmarks:                 # per benchmark (registry name, title or alias): decoding overrides
      videomme: {decoding: {max_new_tokens: 64}}

``--set KEY=VALUE`` overrides one key by its dotted name (``--set media.fps=1``, ``--set
benchmarks.videomme.decoding.max_new_tokens=32``; values are read as JSON where they parse). A media key the
config leaves out is taken from the checkpoint's training config when it has one (``train_config.json``,
written by ``latentomni train``: the model is evaluated as it was trained), else from ``MediaSettings``'
defaults; ``results.json`` says which applied (``settings_from``). Any error is one line naming the file (or
the ``--set``) and the field.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..data.features import MediaSettings
from ..inference.settings import DecodingSettings, parse_set, read_mapping
from .benchmarks import get_benchmark

# The media fields a checkpoint's training config decides (not the test-time controls zero_audio/zero_video).
CHECKPOINT_MEDIA = ("fps", "max_frames", "max_pixels", "use_audio_in_video", "max_audio_seconds")
TRAIN_CONFIG = "train_config.json"
EVAL_CONFIG, CHECKPOINT, DEFAULT = "eval config", f"checkpoint ({TRAIN_CONFIG})", "default"


class EvalConfigError(ValueError):
    """An evaluation config that cannot be used; the message is one line naming the file or ``--set``."""


class BenchmarkSection(BaseModel):
    """What one benchmark changes; only the keys it names override the top-level ones."""

    model_config = ConfigDict(extra="forbid")

    decoding: DecodingSettings = Field(default_factory=DecodingSettings)


class EvalConfig(BaseModel):
    """Everything an evaluation run is asked with, besides the model, benchmark and files."""

    model_config = ConfigDict(extra="forbid")

    media: MediaSettings = Field(default_factory=MediaSettings)
    prefer_separate_audio: bool = False
    decoding: DecodingSettings = Field(default_factory=DecodingSettings)
    system_prompt: str | None = None
    batch_size: int = Field(default=1, ge=1)
    dtype: str = "auto"
    device: str = "auto"
    attn_implementation: str | None = None
    media_cache_size: int = Field(default=4, ge=0)
    benchmarks: dict[str, BenchmarkSection] = Field(default_factory=dict)

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, v: dict[str, BenchmarkSection]) -> dict[str, BenchmarkSection]:
        out: dict[str, BenchmarkSection] = {}
        for key, section in v.items():
            try:
                name = get_benchmark(key).name
            except KeyError as e:
                raise ValueError(e.args[0]) from None
            if name in out:
                raise ValueError(f"{key!r} names {name!r} a second time")
            out[name] = section
        return out

    def decoding_for(self, benchmark: str) -> tuple[DecodingSettings, dict[str, str]]:
        """The decoding ``benchmark`` is asked with, and where each key came from."""
        name = get_benchmark(benchmark).name
        section = self.benchmarks.get(name)
        given = section.decoding.model_fields_set if section is not None else set()
        merged = self.decoding.model_copy(update={k: getattr(section.decoding, k) for k in given}) if section \
            else self.decoding
        sources = {k: f"benchmarks.{name}" if k in given else EVAL_CONFIG if k in self.decoding.model_fields_set
                   else DEFAULT for k in DecodingSettings.model_fields}
        return merged, sources

    def media_for(self, checkpoint: dict[str, Any] | None) -> tuple[MediaSettings, dict[str, str]]:
        """The media settings: the config's own keys, then the checkpoint's training media, then the defaults."""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for k in MediaSettings.model_fields:
            if k in self.media.model_fields_set:
                values[k], sources[k] = getattr(self.media, k), EVAL_CONFIG
            elif checkpoint is not None and k in checkpoint:
                values[k], sources[k] = checkpoint[k], CHECKPOINT
            else:
                values[k], sources[k] = getattr(self.media, k), DEFAULT
        return MediaSettings(**values), sources

    def predictor_kwargs(self, benchmark: str, checkpoint: dict[str, Any] | None = None
                         ) -> tuple[dict[str, Any], dict[str, str]]:
        """``LatentOmniPredictor``'s keyword settings for ``benchmark``, and where each media and decoding key
        came from (``{"media.fps": "checkpoint (train_config.json)", "decoding.max_new_tokens": ...}``)."""
        media, media_from = self.media_for(checkpoint)
        decoding, decoding_from = self.decoding_for(benchmark)
        kwargs = {**media.model_dump(), **decoding.model_dump(), "prefer_separate_audio": self.prefer_separate_audio,
                  "system_prompt": self.system_prompt, "dtype": self.dtype, "device": self.device,
                  "attn_implementation": self.attn_implementation, "media_cache_size": self.media_cache_size}
        sources = {f"media.{k}": v for k, v in media_from.items()} | {f"decoding.{k}": v
                                                                      for k, v in decoding_from.items()}
        return kwargs, sources


def checkpoint_media(model_dir: str | Path) -> dict[str, Any] | None:
    """The media a checkpoint was trained with (``data.media`` of its ``train_config.json``), limited to
    :data:`CHECKPOINT_MEDIA`; None for a checkpoint without a training config (a base, a downloaded model)."""
    try:
        saved = json.loads((Path(model_dir) / TRAIN_CONFIG).read_text(encoding="utf-8"))
        media = saved["data"]["media"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {k: media[k] for k in CHECKPOINT_MEDIA if isinstance(media, dict) and k in media}


def load_eval_config(config: Path | None, overrides: list[str]) -> EvalConfig:
    """``--config`` YAML with the ``--set`` overrides applied, validated; raises :class:`EvalConfigError`."""
    raw: dict[str, Any] = {}
    try:
        if config is not None:
            raw = read_mapping(config, "eval config")
        for item in overrides:
            key, value = parse_set(item)
            node = raw
            parts = key.split(".")
            for i, part in enumerate(parts[:-1]):
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ValueError(f"--set {item}: {'.'.join(parts[:i + 1])} is not a section")
            node[parts[-1]] = value
    except ValueError as e:
        raise EvalConfigError(str(e)) from None
    try:
        return EvalConfig.model_validate(raw)
    except ValidationError as e:
        raise EvalConfigError(_one_line(e, config, overrides)) from None


def _one_line(e: ValidationError, config: Path | None, overrides: list[str]) -> str:
    err = e.errors()[0]
    loc = tuple(str(p) for p in err["loc"])
    field = ".".join(loc) or "(top level)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"unknown setting{_hint(loc)}"
    return f"{_where(loc, config, overrides)}: {field}: {msg}"


def _where(loc: tuple[str, ...], config: Path | None, overrides: list[str]) -> str:
    """The ``--set`` that gave the field (the last one wins, as in the merge), else the file."""
    for item in reversed(overrides):
        key = tuple(item.partition("=")[0].strip().split("."))
        if key[: len(loc)] == loc or loc[: len(key)] == key:
            return f"--set {item}"
    return str(config) if config is not None else "eval config"


def _hint(loc: tuple[str, ...]) -> str:
    """" (did you mean ...?)" for a misspelt key, or for a top-level key that belongs in a section."""
    sections = {"media": MediaSettings, "decoding": DecodingSettings}
    key = loc[-1]
    if len(loc) == 1:
        for section, model in sections.items():
            if key in model.model_fields:
                return f" (did you mean {section}.{key}?)"
        known = list(EvalConfig.model_fields)
    elif loc[-2] in sections:
        known = list(sections[loc[-2]].model_fields)
    else:
        known = list(BenchmarkSection.model_fields) if len(loc) == 3 and loc[0] == "benchmarks" else []
    close = difflib.get_close_matches(key, known, n=1)
    prefix = ".".join(loc[:-1])
    return f" (did you mean {prefix + '.' if prefix else ''}{close[0]}?)" if close else ""
