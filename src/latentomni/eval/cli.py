"""The ``latentomni eval`` command.

    latentomni eval --model DIR --benchmark NAME --annotations PATH --media-root DIR
                    [--limit N] [--out DIR] [--batch-size B] [--config FILE.yaml] [--set KEY=VALUE ...]
    latentomni eval compare RUN_DIR... [--labels NAME...] [--out DIR]

The first form evaluates a checkpoint on one benchmark; it runs under ``accelerate launch -m latentomni.cli
eval ...`` unchanged, each process taking a shard. ``--config`` is an evaluation config
(:mod:`latentomni.eval.config`: media, decoding, batch size, per-benchmark decoding) and ``--set`` overrides one
of its keys by dotted name (``--set media.fps=1``; values are read as JSON when they parse). Media keys the
config leaves out come from the checkpoint's training config when it has one. The second form prints and
writes a Table-1-style comparison of finished runs.

Importing this module is cheap: the config (which imports torch through ``MediaSettings``) and the model code
(``latentomni.inference.predictor``) are imported only when a run starts.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from latentomni.data.questions import Predictor
from latentomni.eval.annotations import AnnotationError
from latentomni.eval.benchmarks import BENCHMARKS, get_benchmark

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
    p.add_argument("--batch-size", type=int, help="questions per predict() call (default: the config's, else 1)")
    p.add_argument("--config", type=Path, help="evaluation config YAML (media, decoding, batch_size, benchmarks)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key by dotted name, e.g. media.fps=1 or decoding.max_new_tokens=64",
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


def make_predictor(model_dir: str, settings: dict[str, Any]) -> Predictor:
    """The real predictor, from ``EvalConfig.predictor_kwargs``; the only place the evaluation harness imports
    model code."""
    from latentomni.inference.predictor import LatentOmniPredictor
    from latentomni.inference.settings import check_settings

    check_settings(LatentOmniPredictor, settings)
    return LatentOmniPredictor(model_dir, **settings)


def run_command(args: argparse.Namespace) -> int:
    from latentomni.eval.config import checkpoint_media, load_eval_config
    from latentomni.eval.runner import SettingsMismatchError, run_eval

    missing = [f"--{name.replace('_', '-')}" for name in RUN_REQUIRED if getattr(args, name) is None]
    if missing:
        print(f"latentomni eval: error: the following arguments are required: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        bench = replace(get_benchmark(args.benchmark), allow_absolute_media=args.allow_absolute_media)
        config = load_eval_config(args.config, args.overrides)
        if not args.media_root.is_dir():
            raise ValueError(f"--media-root {args.media_root} is not a directory")
        bench.load(args.annotations, args.media_root)  # a bad file fails now, not after loading the model
    except (KeyError, ValueError, OSError) as e:  # AnnotationError is a ValueError
        print(f"latentomni eval: error: {e}", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / "eval" / Path(args.model).name / bench.name
    settings, settings_from = config.predictor_kwargs(bench.name, checkpoint_media(args.model))
    try:
        predictor = make_predictor(str(args.model), settings)
    except ModuleNotFoundError as e:
        if e.name != "latentomni.inference.predictor":
            raise
        print("latentomni eval: error: latentomni.inference.predictor is not part of this build", file=sys.stderr)
        return 1
    try:
        results = run_eval(
            predictor,
            bench,
            args.annotations,
            args.media_root,
            out,
            limit=args.limit,
            batch_size=args.batch_size if args.batch_size is not None else config.batch_size,
            progress=not args.no_progress,
            settings_from=settings_from,
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
    media = {k.removeprefix("media."): v for k, v in results.get("settings_from", {}).items() if k.startswith("media.")}
    if media:
        given = {src: [k for k, s in media.items() if s == src] for src in dict.fromkeys(media.values())}
        lines.append("  media settings from: " + "; ".join(f"{src} ({', '.join(keys)})" for src, keys in given.items()))
    lines.append(f"results: {out / 'results.json'}")
    return "\n".join(lines)
