"""``latentomni train --config CONFIG.yaml [--set key=value ...] [--resume [PATH]]``."""

from __future__ import annotations

import argparse
import json
import logging


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train LatentOmni or a baseline from a YAML config")
    p.add_argument("--config", required=True, help="training config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set training.learning_rate=1e-4 --set latent.ospe=false")
    p.add_argument("--resume", nargs="?", const=True, default=None,
                   help="resume from the newest checkpoint in output_dir, or from PATH")
    p.add_argument("--print-config", action="store_true", help="print the validated config and exit")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(json.dumps(cfg.model_dump(), indent=2))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .trainer import train

    metrics = train(cfg, resume=args.resume)
    print(json.dumps(metrics, indent=2))
    return 0
