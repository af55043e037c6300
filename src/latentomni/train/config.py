"""The typed training config: one YAML file per experiment, every field overridable from the command line
(``--set training.learning_rate=1e-4 latent.num_latents=16``). Validated before anything is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config import LatentConfig
from ..data.collate import VARIANTS, MediaSettings, Variant


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Strict):
    base: str = Field(description="a Qwen2.5-Omni (thinker) checkpoint to start from, or a LatentOmni checkpoint")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attn_implementation: str | None = None


class DataSection(_Strict):
    train_file: str
    variant: Variant = "latent"
    media: MediaSettings = Field(default_factory=MediaSettings)
    system_prompt: str | None = None
    fail_fast: bool = False  # raise on the first bad sample instead of skipping and counting it
    max_samples: int | None = Field(default=None, ge=1)
    cache_encoded: bool = False  # keep encoded samples in memory (small datasets, many epochs)
    media_cache_size: int = Field(default=64, ge=0)  # processed clips kept in memory (questions share clips)
    # Media paths must stay inside this folder (default: the train file's folder); a path that climbs out of it,
    # an absolute path or a symlink leading out is skipped and listed in skipped.jsonl.
    media_root: str | None = None
    allow_absolute_media: bool = False  # accept absolute paths and symlinks out of media_root ('..' never)


class LoraSection(_Strict):
    enabled: bool = False
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class TrainingSection(_Strict):
    output_dir: str
    num_train_epochs: float = Field(default=2.0, gt=0)
    max_steps: int = -1
    per_device_train_batch_size: int = Field(default=1, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=1e-5, gt=0)
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)  # fraction of the steps spent warming up
    weight_decay: float = Field(default=0.0, ge=0)
    lr_scheduler_type: str = "cosine"
    max_grad_norm: float = 1.0
    logging_steps: int = Field(default=10, ge=1)
    save_steps: int = Field(default=500, ge=1)
    save_total_limit: int | None = 3
    seed: int = 42
    bf16: bool | Literal["auto"] = "auto"
    gradient_checkpointing: bool = False
    freeze_vision: bool = True  # the paper's recipe keeps the vision tower frozen
    freeze_audio: bool = False
    freeze_llm: bool = False
    lora: LoraSection = Field(default_factory=LoraSection)
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"])
    dataloader_num_workers: int = Field(default=0, ge=0)
    deepspeed: str | None = None  # a DeepSpeed JSON (ZeRO-2/3); FSDP comes from the accelerate config
    disable_tqdm: bool = False
    max_minutes: float | None = Field(default=None, gt=0)  # stop (and save) once this much wall time has passed
    # Latent diagnostics (model/diagnostics.py) of the first ``diagnostics_samples`` training samples every
    # ``diagnostics_every`` optimizer steps and at the end, logged as latent/* beside the loss terms; 0: off.
    diagnostics_every: int = Field(default=0, ge=0)
    diagnostics_samples: int = Field(default=8, ge=1)


class TrainConfig(_Strict):
    model: ModelSection
    latent: LatentConfig = Field(default_factory=LatentConfig)
    data: DataSection
    training: TrainingSection

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.data.variant == "latent" and not self.latent.latent_mode:
            raise ValueError("data.variant 'latent' needs latent.latent_mode: true")
        if self.data.variant != "latent" and self.latent.latent_mode:
            # Baselines never see latent blocks; the config says so instead of silently training K slots.
            raise ValueError(f"data.variant '{self.data.variant}' is a baseline: set latent.latent_mode: false")
        if self.training.diagnostics_every and self.data.variant != "latent":
            raise ValueError(f"training.diagnostics_every measures latent blocks; data.variant "
                             f"'{self.data.variant}' has none: set training.diagnostics_every: 0")
        if self.training.freeze_llm and not self.training.lora.enabled:
            raise ValueError("training.freeze_llm without LoRA leaves no language-model weight to train")
        return self


def parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ValueError(f"override {item!r} is not KEY=VALUE (e.g. training.learning_rate=1e-4)")
    return key.strip().split("."), yaml.safe_load(raw)


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Load a YAML config (``inherit: other.yaml`` merges a parent file first), apply dotted overrides and
    validate. Paths inside the file (data, base model, output) are relative to the working directory."""
    raw = _read_with_inherit(Path(path))
    for item in overrides or []:
        keys, value = parse_override(item)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {k} is not a section")
        node[keys[-1]] = value
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as e:
        raise ValueError(f"{path}: invalid training config:\n{e}") from None


def _read_with_inherit(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"training config {path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    parent = data.pop("inherit", None)
    if parent is None:
        return data
    base = _read_with_inherit((path.parent / parent).resolve())
    return _merge(base, data)


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


__all__ = ["VARIANTS", "TrainConfig", "load_config"]
