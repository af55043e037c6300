"""Build the tiny base with the grounding stage: the committed recipe's stages 0-2, then stage 3
(:func:`grounding_stage.run_grounding_stage`), written with its recipe.json like ``latentomni pretrain-base``.

    python experiments/grounding/pretrain.py --out runs/base-grounding   # about an hour on 2 cores
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from grounding_stage import grounding_stage

from latentomni.demo.base import pretrain_base


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/base-grounding"), help="where the checkpoint goes")
    ap.add_argument("--work-dir", type=Path, default=Path("runs/base"),
                    help="stages' checkpoints and worlds, `make base`'s by default: finished stages are resumed")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="override the recipe's step count (stages 0-2 share it; it also caps each grounding phase)")
    ap.add_argument("--max-minutes", type=float, default=60.0, help="stop stages 1-2 (and save) after this long")
    ap.add_argument("--workers", type=int, default=2, help="processes rendering the worlds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = pretrain_base(args.out, args.work_dir, args.max_steps, args.max_minutes, args.workers,
                           extra=grounding_stage())
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
