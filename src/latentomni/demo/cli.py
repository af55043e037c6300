"""``latentomni pretrain-base`` and ``latentomni demo``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import get_args


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..data.world.questions import OptionOrder

    p = subparsers.add_parser("pretrain-base", help="train the demo's tiny perceiving base model (make base)")
    p.add_argument("--out", type=Path, default=None, help="where the checkpoint goes (default: the packaged asset)")
    p.add_argument("--work-dir", type=Path, default=Path("runs/base"))
    p.add_argument("--max-steps", type=int, default=None, help="override the recipe's step count")
    p.add_argument("--max-minutes", type=float, default=60.0, help="stop (and save) after this much wall time")
    p.add_argument("--workers", type=int, default=2, help="processes rendering the world")
    p.set_defaults(func=_pretrain)

    d = subparsers.add_parser("demo", help="train and evaluate LatentOmni and its baselines on the synthetic world")
    d.add_argument("--out", type=Path, default=Path("runs/demo"))
    d.add_argument("--quick", action="store_true", help="a <= 3-minute smoke run of the same code path")
    d.add_argument("--ablations", action="store_true", help="also train the Table 4 ablations")
    d.add_argument("--base", type=Path, default=None, help="base checkpoint (default: the committed tiny base)")
    d.add_argument("--configs", type=Path, default=None,
                   help="folder of demo configs (default: configs/demo under the working directory)")
    d.add_argument("--max-steps", type=int, default=None, help="training steps per variant (default: configs)")
    d.add_argument("--n-train-clips", type=int, default=None)
    d.add_argument("--n-test-clips", type=int, default=None)
    d.add_argument("--n-val-clips", type=int, default=None,
                   help="validation clips the sweep scores on (default: 160; the demo's table never reads them)")
    d.add_argument("--sweep", nargs="?", const="", default=None, metavar="SPEC",
                   help="train the runs of a sweep spec (default configs/demo/sweep.yaml) and score each on the "
                        "VALIDATION split; writes OUT/sweep/results.md and .json, a rerun skips finished runs")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--option-order", choices=get_args(OptionOrder), default=None,
                   help="how the world's questions list their options (default: canonical, see README)")
    d.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of every variant's training config")
    d.set_defaults(func=_demo)


def _pretrain(args: argparse.Namespace) -> int:
    import logging

    from .base import ASSET_DIR, pretrain_base

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = pretrain_base(args.out or ASSET_DIR, args.work_dir, args.max_steps, args.max_minutes, args.workers)
    print(json.dumps(report, indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    import logging

    from .run import DemoSettings, missing_config, run_demo

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.sweep is not None and (args.max_steps is not None or args.ablations):
        print(f"latentomni demo: --sweep takes its step budgets and runs from {args.sweep}; drop "
              f"{'--max-steps' if args.max_steps is not None else '--ablations'}")
        return 2
    kw = {"out": args.out, "seed": args.seed, "ablations": args.ablations, "overrides": args.overrides}
    for key in ("base", "max_steps", "n_train_clips", "n_test_clips", "n_val_clips", "option_order"):
        if getattr(args, key) is not None:
            kw[key] = getattr(args, key)
    if args.configs is not None:
        kw["config_dir"] = args.configs
    settings = DemoSettings.quick(**kw) if args.quick else DemoSettings(**kw)
    if not settings.config_dir.is_dir():  # before the world is generated: a wrong folder costs nothing
        print(f"latentomni demo: {missing_config(settings.config_dir, settings.config_dir)}")
        return 2
    if args.sweep is not None:
        from .sweep import SweepSpecError, run_sweep

        try:
            run_sweep(settings, Path(args.sweep) if args.sweep else settings.config_dir / "sweep.yaml")
        except SweepSpecError as e:
            print(f"latentomni demo --sweep: {e}")
            return 2
        print(f"\nwrote {args.out / 'sweep' / 'results.md'} and results.json")
        return 0
    run_demo(settings)
    print(f"\nwrote {args.out / 'results.json'}, {args.out / 'accuracy.png'}, {args.out / 'learning_curves.png'}")
    return 0
