"""Predictor settings from ``--config FILE.yaml`` and ``--set KEY=VALUE``, checked against the predictor's
constructor before any model loads. Free of model imports, so ``eval`` and ``analyze`` can refuse a bad setting
in a fraction of a second."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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


def predictor_settings(config: Path | None, overrides: list[str]) -> dict[str, Any]:
    """``--config`` YAML merged with ``--set KEY=VALUE`` pairs (JSON values where they parse). A config that
    cannot be read, is not YAML (a tag included) or is not a mapping raises ``ValueError`` with one line
    naming the file, the line and the field."""
    settings: dict[str, Any] = {}
    if config is not None:
        import yaml

        from ..cli import yaml_error_line

        try:
            text = config.read_text(encoding="utf-8")
        except OSError as e:
            raise ValueError(f"{config}: cannot read the predictor config ({e.strerror})") from None
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ValueError(yaml_error_line(config, text, e)) from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{config}: expected a mapping of predictor settings, got {type(loaded).__name__}")
        settings.update(loaded)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            settings[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            settings[key.strip()] = value
    return settings
