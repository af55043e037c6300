"""The typed training config: one YAML file per experiment, every field overridable from the command line
(``--set training.learning_rate=1e-4 latent.num_latents=16``). Validated before anything is loaded."""

from __future__ import annotations

import copy
import dataclasses
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from ..config import LatentConfig
from ..data.collate import VARIANTS, Variant
from ..data.features import MediaSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Strict):
    base: str = Field(description="a Qwen2.5-Omni or Qwen3-Omni (thinker) checkpoint to start from, or a LatentOmni "
                                  "checkpoint; the family is read from its config.json")
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
    # Fused 3-D expert parameters of a mixture-of-experts text model, by name suffix (peft's target_parameters:
    # one rank-r pair per expert), e.g. Qwen3-Omni's [mlp.experts.gate_up_proj, mlp.experts.down_proj]. Empty:
    # the experts stay frozen. Folded into the saved weights like target_modules.
    target_parameters: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _expert_lora_has_no_dropout(self) -> LoraSection:
        # peft applies an expert parameter's adapters as a weight delta, with no activation to drop out.
        if self.target_parameters and self.dropout:
            raise ValueError(f"training.lora.dropout must be 0 with target_parameters {self.target_parameters} "
                             f"(peft's expert LoRA has no dropout), got {self.dropout}")
        return self


# The recipe's values for TrainingArguments fields, with the bounds checked before anything loads: what a
# config that does not name the field gets (several differ from transformers' own defaults, e.g. lr 1e-5, cosine,
# batch 1). They fill every config, so train_config.json records them whether or not the YAML wrote them.
RECIPE_ARGUMENTS: dict[str, tuple[Any, Any]] = {
    "num_train_epochs": (2.0, Annotated[float, Field(gt=0)]),
    "max_steps": (-1, int),
    "per_device_train_batch_size": (1, Annotated[int, Field(ge=1)]),
    "gradient_accumulation_steps": (1, Annotated[int, Field(ge=1)]),
    "learning_rate": (1e-5, Annotated[float, Field(gt=0)]),
    "weight_decay": (0.0, Annotated[float, Field(ge=0)]),
    "lr_scheduler_type": ("cosine", str),
    "max_grad_norm": (1.0, float),
    "logging_steps": (10, Annotated[int, Field(ge=1)]),
    "save_steps": (500, Annotated[int, Field(ge=1)]),
    "save_total_limit": (3, int | None),
    "seed": (42, int),
    "report_to": (["tensorboard"], list[str]),
    "dataloader_num_workers": (0, Annotated[int, Field(ge=0)]),
    "deepspeed": (None, str | None),  # a DeepSpeed JSON (ZeRO-2/3); FSDP comes from the accelerate config
    "disable_tqdm": (False, bool),
}
# TrainingArguments fields a config cannot set: the project sets them itself (see trainer.training_arguments).
FIXED_ARGUMENTS = {"remove_unused_columns": "the collator needs every column of an encoded sample",
                   "warmup_ratio": "transformers 5 has none; training.warmup_ratio is the project's own field"}


def _field_error(model: str, loc: tuple, value: Any, message: str) -> ValidationError:
    """A pydantic error at ``loc`` (so the command's one-line report names the field and the file that sets it)."""
    return ValidationError.from_exception_data(model, [{"type": "value_error", "loc": loc, "input": value,
                                                        "ctx": {"error": ValueError(message)}}])


@cache
def _argument_types() -> dict[str, Any]:
    """TrainingArguments' own fields and their annotated types (the dataclass is the authority)."""
    from transformers import TrainingArguments

    return {f.name: f.type for f in dataclasses.fields(TrainingArguments) if f.init}


@cache
def _adapter(name: str) -> TypeAdapter:
    kind = RECIPE_ARGUMENTS[name][1] if name in RECIPE_ARGUMENTS else _argument_types()[name]
    return TypeAdapter(kind)


class TrainingSection(BaseModel):
    """The project's own training fields; every other key is a ``TrainingArguments`` field, passed through as
    written (``optim``, ``eval_strategy``, ``fsdp_config``, ...), its value checked against the field's type
    before anything loads. A key that is neither is a one-line error naming it."""

    model_config = ConfigDict(extra="allow")

    output_dir: str
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)  # fraction of the steps spent warming up
    bf16: bool | Literal["auto"] = "auto"  # auto: on where the accelerator supports bfloat16
    # On the thinker with non-reentrant checkpointing (the wrapper is not a PreTrainedModel the Trainer could
    # switch it on for); not passed to TrainingArguments.
    gradient_checkpointing: bool = False
    freeze_vision: bool = True  # the paper's recipe keeps the vision tower frozen
    freeze_audio: bool = False
    freeze_llm: bool = False
    lora: LoraSection = Field(default_factory=LoraSection)
    max_minutes: float | None = Field(default=None, gt=0)  # stop (and save) once this much wall time has passed
    # Latent diagnostics (model/diagnostics.py) of the first ``diagnostics_samples`` training samples every
    # ``diagnostics_every`` optimizer steps and at the end, logged as latent/* beside the loss terms; 0: off.
    diagnostics_every: int = Field(default=0, ge=0)
    diagnostics_samples: int = Field(default=8, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _arguments(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = {k: v for k, v in data.items()}
        for name, (default, _) in RECIPE_ARGUMENTS.items():
            out.setdefault(name, copy.deepcopy(default))
        own, types = set(cls.model_fields), _argument_types()
        for name in [k for k in out if k not in own]:
            if name in FIXED_ARGUMENTS:
                raise _field_error(cls.__name__, (name,), out[name], f"cannot be set: {FIXED_ARGUMENTS[name]}")
            if name not in types:
                raise ValidationError.from_exception_data(cls.__name__, [{"type": "extra_forbidden", "loc": (name,),
                                                                          "input": out[name]}])
            try:
                out[name] = _adapter(name).validate_python(out[name])
            except ValidationError as e:
                err = e.errors()[0]  # of a union type, the first member's complaint: one line, at the field
                raise ValidationError.from_exception_data(cls.__name__, [
                    {"type": err["type"], "loc": (name,), "input": err["input"],
                     **({"ctx": err["ctx"]} if "ctx" in err else {})}]) from None
        return out

    @model_validator(mode="after")
    def _one_warmup(self) -> TrainingSection:
        if "warmup_steps" in (self.model_extra or {}) and "warmup_ratio" in self.model_fields_set:
            raise ValueError("training: set warmup_ratio or warmup_steps, not both (warmup_steps < 1 is a ratio)")
        return self

    @classmethod
    def known_fields(cls) -> list[str]:
        """Every key this section takes (for the suggestion beside an unknown one)."""
        return [*cls.model_fields, *(n for n in _argument_types() if n not in FIXED_ARGUMENTS)]

    def arguments(self) -> dict[str, Any]:
        """The TrainingArguments fields this section sets (the recipe's values and every passed-through one)."""
        return dict(self.model_extra or {})


class TrainConfig(_Strict):
    """One experiment. ``data.variant`` is the one switch between LatentOmni and its baselines:
    ``latent.latent_mode`` follows from it (on for ``latent``, off for ``text_cot`` and ``vanilla``) and is not
    written in a config; one that still writes it must agree with the variant."""

    model: ModelSection
    latent: LatentConfig = Field(default_factory=LatentConfig)
    data: DataSection
    training: TrainingSection

    @model_validator(mode="before")
    @classmethod
    def _latent_mode_from_variant(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        data = raw.get("data")
        variant = data.variant if isinstance(data, DataSection) else \
            data.get("variant", "latent") if isinstance(data, dict) else None
        if variant not in VARIANTS:
            return raw  # DataSection names what is wrong
        latent = raw.get("latent", {})
        if isinstance(latent, LatentConfig):  # built in code: only what its caller set counts as written
            latent = latent.model_dump(include=latent.model_fields_set)
        if not isinstance(latent, dict):
            return raw
        wanted = variant == "latent"
        if "latent_mode" in latent and latent["latent_mode"] != wanted:
            raise _field_error(cls.__name__, ("latent", "latent_mode"), latent["latent_mode"],
                               f"data.variant '{variant}' sets latent_mode to {str(wanted).lower()} (the variant "
                               "decides it); remove latent.latent_mode from the config")
        return {**raw, "latent": {**latent, "latent_mode": wanted}}

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
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
