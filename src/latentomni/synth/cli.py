"""``latentomni synth``: the data-construction pipeline of Sec. 3.3 as sub-commands.

    latentomni synth STAGE --config configs/synth/pipeline.yaml [--dry-run] [--retry-failed REASON ...]
    latentomni synth all   --config configs/synth/pipeline.yaml

Stages, in order: ingest, qa, score, balance, segment, captions, trajectory, assemble. Each resumes
where a previous run stopped. ``--dry-run`` prints the first prompt of each stage and sends nothing.
Heavy imports (openai, PyAV) happen only when a command runs, so ``latentomni --help`` stays fast.
Also runnable alone as ``python -m latentomni.synth.cli``.
"""

from __future__ import annotations

import argparse
import sys

STAGE_HELP = {
    "ingest": "read and validate time-aligned caption records (native, ASID, AVoCaDO)",
    "qa": "synthesize open-ended and multiple-choice QA pairs from each caption",
    "score": "judge scores, category and modality; drop totals below the threshold",
    "balance": "down-sample categories so that adjacent ones differ by at most max_ratio",
    "segment": "cut each media file into clips (with audio) and 16 kHz wavs",
    "captions": "video/audio captions per segment, fusion, refinement, hallucination filter",
    "trajectory": "reasoning chains citing [Segment n], audited and rule-checked",
    "assemble": "turn citations into latent parts, write the training JSONL and the dataset card",
}


def _run(args: argparse.Namespace) -> int:
    from latentomni.synth.client import SynthError
    from latentomni.synth.config import ConfigError, load_config
    from latentomni.synth.pipeline import STAGE_NAMES, dry_run, run_stages
    from latentomni.synth.store import StoreError

    names = STAGE_NAMES if args.synth_stage == "all" else [args.synth_stage]
    try:
        cfg = load_config(args.config)
        if args.run_dir is not None:  # the training JSONL moves along when it lived inside the old run_dir
            old, cfg.run_dir = cfg.run_dir, args.run_dir.resolve()
            output = cfg.stages.assemble.output
            if output.is_relative_to(old):
                cfg.stages.assemble.output = cfg.run_dir / output.relative_to(old)
        if args.dry_run:
            dry_run(cfg, names)
            return 0
        run_stages(cfg, names, retry_failed=args.retry_failed, progress=not args.no_progress, log=sys.stderr)
    except (ConfigError, SynthError, StoreError) as e:
        print(f"latentomni synth: error: {e}", file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``synth`` and its stage sub-commands on the ``latentomni`` command."""
    from pathlib import Path

    parser = subparsers.add_parser("synth", help="build LatentOmni training data with LLMs (Sec. 3.3)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = parser.add_subparsers(dest="synth_stage", required=True, metavar="STAGE")
    for name, help_text in [*STAGE_HELP.items(), ("all", "run every stage in order")]:
        sp = stages.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("--config", "-c", type=Path, required=True, help="pipeline YAML (see configs/synth/)")
        sp.add_argument("--dry-run", action="store_true", help="print the first prompt of each stage, send nothing")
        sp.add_argument("--run-dir", type=Path, default=None, help="override run_dir of the config")
        sp.add_argument("--retry-failed", nargs="*", default=[], metavar="REASON",
                        help="forget earlier drops with these reasons (e.g. request_failed) and process them again")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")
        sp.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m latentomni.synth.cli STAGE ...``: the same command as ``latentomni synth``, Ctrl-C included."""
    from latentomni.cli import run

    parser = argparse.ArgumentParser(prog="latentomni")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["synth", *(sys.argv[1:] if argv is None else argv)])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
