"""``latentomni train --config CONFIG.yaml [--set key=value ...] [--resume [PATH]]``.

A bad config ends in one line that names the file (or the ``--set``), the line or field, and the problem
(a missing file, an unknown field, a YAML tag, a value out of range), before the model is loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train LatentOmni or a baseline from a YAML config")
    p.add_argument("--config", required=True, help="training config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set training.learning_rate=1e-4 --set latent.ospe=false")
    p.add_argument("--resume", nargs="?", const=True, default=None,
                   help="resume from the newest checkpoint in output_dir, or from PATH")
    p.add_argument("--print-config", action="store_true", help="print the validated config and exit")
    p.set_defaults(func=_run, interrupt_hint="rerun it with --resume to continue from the newest checkpoint "
                                             "in training.output_dir")


def _inherit_chain(path: Path) -> list[Path]:
    """The config and the files it inherits from (``inherit: parent.yaml``), the given file first; stops at
    the first file that cannot be read or parsed (that one is last)."""
    import yaml

    chain: list[Path] = []
    while path not in chain:
        chain.append(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            break
        parent = data.get("inherit") if isinstance(data, dict) else None
        if parent is None:
            break
        path = (path.parent / parent).resolve()
    return chain


def _yaml_problem(chain: list[Path]) -> str | None:
    """The one-line report of the first file of ``chain`` that is missing or not valid YAML."""
    import yaml

    from latentomni.config import yaml_error_line

    for path in chain:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            return f"{path}: cannot read the training config ({e.strerror})"
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as e:
            return yaml_error_line(path, text, e)
    return None


def _origin(chain: list[Path], overrides: list[str], loc: tuple) -> str:
    """Where the value at ``loc`` was set: the ``--set`` that names it, else the nearest file that does."""
    import yaml

    dotted = ".".join(str(x) for x in loc)
    for item in reversed(overrides):
        key = item.partition("=")[0].strip()
        if key and (dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + ".")):
            return f"--set {item}"
    for path in chain:
        try:
            node = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        for key in loc:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return str(path)
    return str(chain[0])


def config_error_line(path: str, overrides: list[str], error: Exception) -> str:
    """One line for what :func:`latentomni.train.config.load_config` raised."""
    from pydantic import ValidationError

    from latentomni.config import validation_error_line, yaml_error_line

    chain = _inherit_chain(Path(path))
    problem = _yaml_problem(chain)
    if problem is not None:
        return problem
    import yaml

    if isinstance(error, yaml.YAMLError):  # the files are fine: a --set value is not valid YAML
        for item in overrides:
            try:
                yaml.safe_load(item.partition("=")[2])
            except yaml.YAMLError as e:
                return yaml_error_line(f"--set {item}", item.partition("=")[2], e, with_line=False)
    # load_config re-raises pydantic's error as a ValueError naming the file; the original is its context
    cause = error if isinstance(error, ValidationError) else error.__context__
    if isinstance(cause, ValidationError):
        from latentomni.train.config import TrainConfig

        loc = tuple(cause.errors()[0]["loc"]) if cause.errors() else ()
        source = _origin(chain, overrides, loc) if loc else str(chain[0])
        return validation_error_line(source, cause, TrainConfig)
    return " ".join(str(error).split())


def _run(args: argparse.Namespace) -> int:
    import yaml

    try:
        from .config import load_config

        cfg = load_config(args.config, args.overrides)
    except (OSError, ValueError, yaml.YAMLError) as e:
        print(f"latentomni train: error: {config_error_line(args.config, args.overrides, e)}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(cfg.model_dump(), indent=2))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .trainer import train

    metrics = train(cfg, resume=args.resume)
    print(json.dumps(metrics, indent=2))
    return 0
