"""The ``latentomni eval`` command.

    latentomni eval --model DIR --benchmark NAME --annotations PATH --media-root DIR
                    [--limit N] [--out DIR] [--batch-size B] [--config FILE.yaml] [--set KEY=VALUE ...]
    latentomni eval compare RUN_DIR... [--labels NAME...] [--out DIR]

The first form evaluates a checkpoint on one benchmark; it runs under ``accelerate launch -m latentomni.cli
eval ...`` unchanged, each process taking a shard. ``--config``/``--set`` are passed to the predictor as
keyword settings (``--set`` wins; values are read as JSON when they parse, e.g. ``--set fps=2``). The second
form prints and writes a Table-1-style comparison of finished runs.

Importing this module is cheap: the model code (``latentomni.inference``) is imported only when a run
starts, through ``make_predictor``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from latentomni.eval.annotations import AnnotationError
from latentomni.eval.benchmarks import BENCHMARKS, get_benchmark
from latentomni.eval.items import Predictor

RUN_REQUIRED = ("model", "benchmark", "annotations", "media_root")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``eval`` (and its ``compare`` sub-command) on the top-level ``latentomni`` parser."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint on a benchmark, or compare runs",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="checkpoint directory given to the predictor")
    p.add_argument("--benchmark", help=f"one of {', '.join(BENCHMARKS)}")
    p.add_argument("--annotations", type=Path, help="the benchmark's official annotation file")
    p.add_argument("--media-root", type=Path, help="folder holding the benchmark's videos")
    p.add_argument(
        "--allow-absolute-media",
        action="store_true",
        help="accept media outside --media-root named by an absolute path or reached through a symlink "
        "(refused by default; a relative path climbing out with '..' is refused always)",
    )
    p.add_argument("--limit", type=int, help="evaluate only the first N questions (file order)")
    p.add_argument("--out", type=Path, help="output dir (default runs/eval/<model name>/<benchmark>)")
    p.add_argument("--batch-size", type=int, default=1, help="questions per predict() call (default 1)")
    p.add_argument("--config", type=Path, help="YAML mapping of predictor settings")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="predictor setting"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_command)

    sub = p.add_subparsers(dest="eval_command", metavar="[compare]")
    c = sub.add_parser("compare", help="compare finished runs (rows) across benchmarks (columns)")
    c.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="eval out dir, or a folder of them")
    c.add_argument("--labels", nargs="+", help="row labels, one per RUN_DIR (default: the dir names)")
    c.add_argument("--out", type=Path, default=Path("."), help="where comparison.md/.png go (default .)")
    c.set_defaults(func=compare_command)
    return p


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


def make_predictor(model_dir: str, settings: dict[str, Any]) -> Predictor:
    """The real predictor; the only place the evaluation harness imports model code."""
    from latentomni.inference import LatentOmniPredictor

    check_settings(LatentOmniPredictor, settings)
    return LatentOmniPredictor(model_dir, **settings)


def predictor_settings(config: Path | None, overrides: list[str]) -> dict[str, Any]:
    """``--config`` YAML merged with ``--set KEY=VALUE`` pairs (JSON values where they parse). A config that
    cannot be read, is not YAML (a tag included) or is not a mapping raises ``ValueError`` with one line
    naming the file, the line and the field."""
    settings: dict[str, Any] = {}
    if config is not None:
        import yaml

        from latentomni.cli import yaml_error_line

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


def run_command(args: argparse.Namespace) -> int:
    from latentomni.eval.runner import SettingsMismatchError, run_eval

    missing = [f"--{name.replace('_', '-')}" for name in RUN_REQUIRED if getattr(args, name) is None]
    if missing:
        print(f"latentomni eval: error: the following arguments are required: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        bench = replace(get_benchmark(args.benchmark), allow_absolute_media=args.allow_absolute_media)
        settings = predictor_settings(args.config, args.overrides)
        if not args.media_root.is_dir():
            raise ValueError(f"--media-root {args.media_root} is not a directory")
        bench.load(args.annotations, args.media_root)  # a bad file fails now, not after loading the model
    except (KeyError, ValueError, OSError) as e:  # AnnotationError is a ValueError
        print(f"latentomni eval: error: {e}", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / "eval" / Path(args.model).name / bench.name
    try:
        predictor = make_predictor(str(args.model), settings)
    except UnknownSettingError as e:
        print(f"latentomni eval: error: {e.where(args.config, args.overrides)}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if e.name != "latentomni.inference":
            raise
        print("latentomni eval: error: latentomni.inference is not part of this build", file=sys.stderr)
        return 1
    try:
        results = run_eval(
            predictor,
            bench,
            args.annotations,
            args.media_root,
            out,
            limit=args.limit,
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
    except (AnnotationError, SettingsMismatchError) as e:
        print(f"latentomni eval: error: {e}", file=sys.stderr)
        return 1
    if results is not None:
        print(format_summary(results, out))
    return 0


def compare_command(args: argparse.Namespace) -> int:
    from latentomni.eval.compare import write_comparison

    try:
        markdown, md_path, png_path = write_comparison(args.runs, args.out, args.labels)
    except (FileNotFoundError, ValueError) as e:
        print(f"latentomni eval compare: error: {e}", file=sys.stderr)
        return 2
    print(markdown, end="")
    print(f"\nwrote {md_path} and {png_path}")
    return 0


def format_summary(results: dict[str, Any], out: Path) -> str:
    """A few lines for the terminal; the full numbers are in results.json."""

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    pending = results.get("n_pending", 0)
    lines = [
        f"{results['title']}: accuracy {pct(results['accuracy'])} over {results['n']} answered questions, "
        f"{pct(results.get('accuracy_overall'))} over all {results['n_selected']} "
        f"(parse failures {pct(results['parse_failure_rate'])}, media errors {results.get('n_media_errors', 0)}, "
        f"missing media {results['n_missing_media']}" + (f", {pending} not answered yet" if pending else "") + ")"
    ]
    if not results["complete"]:
        lines.append("  incomplete: rerun the same command to retry media errors and answer what is left")
    for bd in results["breakdowns"].values():
        groups = ", ".join(f"{name} {pct(g['accuracy'])} ({g['n']})" for name, g in bd["groups"].items())
        lines.append(f"  {bd['title']}: {groups}")
    lines.append(f"results: {out / 'results.json'}")
    return "\n".join(lines)
