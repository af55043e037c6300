"""Predictor settings: the typed decoding section (:class:`DecodingSettings`), and the reading of
``--config FILE.yaml`` / ``--set KEY=VALUE`` shared by ``eval`` (typed: :mod:`latentomni.eval.config`) and
``analyze`` (keyword settings checked against the predictor's constructor before any model loads). Free of
model imports, so a bad setting is refused in a fraction of a second."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..config import AttentionFlow


class DecodingSettings(BaseModel):
    """How a reply is decoded (``model.generate.GenerationConfig``) and the latent settings that do not
    change the weights. Greedy by default: the Qwen-Omni thinker's own generation config samples, which makes
    two runs of one benchmark disagree."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(default=512, ge=1)  # every generated position counts, latent states included
    do_sample: bool = False
    temperature: float = Field(default=1.0, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0)  # 0: no top-k cut
    seed: int | None = None
    max_latent_blocks: int = Field(default=4, ge=0)  # after this many blocks the trigger is suppressed
    attention_flow: AttentionFlow | None = None  # None: the checkpoint's own (latentomni.json)


class UnknownSettingError(ValueError):
    """A predictor setting the predictor does not take; :meth:`where` names the file or ``--set`` it came from."""

    def __init__(self, key: str, known: list[str]) -> None:
        import difflib

        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        super().__init__(f"unknown predictor setting {key!r}{hint}; settings are {', '.join(known)}")
        self.key = key

    def where(self, config: Path | None, overrides: list[str]) -> str:
        """The message prefixed with where the setting was given (the last ``--set`` wins, as in the merge)."""
        for item in reversed(overrides):
            if item.partition("=")[0].strip() == self.key:
                return f"--set {item}: {self}"
        return f"{config}: {self.key}: {self}" if config is not None else str(self)


def check_settings(predictor: type, settings: dict[str, Any]) -> None:
    """Refuse a setting ``predictor``'s constructor does not take, before it loads a model."""
    import inspect

    params = inspect.signature(predictor).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [name for name in params if name != "model_dir"]
    for key in settings:
        if key not in params or key == "model_dir":
            raise UnknownSettingError(key, known)


def read_mapping(config: Path, what: str = "predictor config") -> dict[str, Any]:
    """A YAML file that must hold a mapping. A file that cannot be read, is not YAML (a tag included) or is not
    a mapping raises ``ValueError`` with one line naming the file, the line and the field."""
    import yaml

    from ..config import yaml_error_line

    try:
        text = config.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{config}: cannot read the {what} ({e.strerror})") from None
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ValueError(yaml_error_line(config, text, e)) from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{config}: expected a mapping of settings, got {type(loaded).__name__}")
    return loaded


def parse_set(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--set``: the value read as JSON where it parses (``--set fps=2`` is a number)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def predictor_settings(config: Path | None, overrides: list[str]) -> dict[str, Any]:
    """``--config`` YAML merged with ``--set KEY=VALUE`` pairs, as flat predictor keyword settings."""
    settings: dict[str, Any] = read_mapping(config) if config is not None else {}
    for item in overrides:
        key, value = parse_set(item)
        settings[key] = value
    return settings
