"""Build the tiny base with the grounding stage: the committed recipe's stages 0-2, then stage 3
(:func:`grounding_stage.run_grounding_stage`), written with its recipe.json like ``latentomni pretrain-base``.

    python experiments/grounding/pretrain.py --out runs/base-grounding            # stages 0-2, then 3: about an hour
    python experiments/grounding/pretrain.py --on-base committed --out runs/base-grounding   # stage 3 only: ~30 min

``--on-base`` trains stage 3 on an existing base (``committed``: the checkpoint every demo variant starts
from), so the comparison "committed base" vs "committed base + grounding" differs in stage 3 alone and the
hour of stages 0-2 is not repeated.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import torch
from grounding_stage import grounding_stage

from latentomni.demo.base import ASSET_DIR, ExtraStage, pretrain_base, sha256

COMMITTED = "committed"


def stage3_on_base(base: Path, out_dir: Path, work_dir: Path, max_steps: int | None, workers: int,
                   stage: ExtraStage | None = None) -> dict:
    """Stage 3 alone from the ``base`` checkpoint into ``out_dir``, with a recipe.json that records the base's own
    recipe (and its hash), stage 3's recipe and report, and the command; ``stage`` defaults to the measured
    :func:`grounding_stage` (a test passes a smaller world)."""
    from latentomni.model.wrapper import LatentOmniModel

    if not (base / "config.json").is_file():
        raise SystemExit(f"--on-base {base}: no checkpoint there (config.json missing)")
    base_recipe_file = base / "recipe.json"
    base_recipe = json.loads(base_recipe_file.read_text()) if base_recipe_file.is_file() else {}
    stage = stage or grounding_stage()
    seed = base_recipe.get("recipe", {}).get("seed", 0)
    t0 = time.time()
    report = stage.run(base, work_dir, stage.recipe, max_steps, workers, seed)
    model = LatentOmniModel.from_pretrained(work_dir / stage.name)
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir)
    (out_dir / "training_args.bin").unlink(missing_ok=True)
    saved = {
        "recipe": {**base_recipe.get("recipe", {}), stage.name: stage.recipe},
        "on_base": {"path": str(base), "sha256": base_recipe.get("sha256", {}),
                    "steps_trained": base_recipe.get("steps_trained")},
        stage.name: report,
        "train_minutes": round((time.time() - t0) / 60, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "sha256": {"model.safetensors": sha256(out_dir / "model.safetensors")},
        "command": f"{stage.command} --on-base {base}",
        "torch": torch.__version__,
    }
    (out_dir / "recipe.json").write_text(json.dumps(saved, indent=2) + "\n")
    return saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/base-grounding"), help="where the checkpoint goes")
    ap.add_argument("--on-base", default=None,
                    help="train stage 3 alone on this checkpoint ('committed': the demo's committed base)")
    ap.add_argument("--work-dir", type=Path, default=None,
                    help="stages' checkpoints and worlds (runs/base, `make base`'s, by default; "
                         "runs/base-grounding-work with --on-base): finished stages are resumed")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="override the recipe's step count (stages 0-2 share it; it also caps each grounding phase)")
    ap.add_argument("--max-minutes", type=float, default=60.0, help="stop stages 1-2 (and save) after this long")
    ap.add_argument("--workers", type=int, default=2, help="processes rendering the worlds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.on_base is not None:
        base = ASSET_DIR if args.on_base == COMMITTED else Path(args.on_base)
        work_dir = args.work_dir or Path("runs/base-grounding-work")
        report = stage3_on_base(base, args.out, work_dir, args.max_steps, args.workers)
    else:
        report = pretrain_base(args.out, args.work_dir or Path("runs/base"), args.max_steps, args.max_minutes,
                               args.workers, extra=grounding_stage())
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
