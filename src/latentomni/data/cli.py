"""Sub-commands of the data area: ``latentomni world`` writes the synthetic audio-visual world."""

from __future__ import annotations

import argparse
import time
from typing import get_args


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the data sub-commands on the ``latentomni`` parser."""
    from latentomni.data.world.questions import DEFAULT_HELD_OUT, QUESTION_TYPES, OptionOrder

    p = subparsers.add_parser(
        "world",
        help="generate the synthetic audio-visual world (clips, QA splits, perception data, captions)",
        description="Render short seeded clips (coloured shapes + tones/noise/silence, H.264 + AAC) and write "
        "train.jsonl, test.jsonl (held-out question types, new clips), test_seen.jsonl, perception.jsonl, "
        "captions.jsonl, ground_truth.jsonl and manifest.json under --out. The same seed writes identical files.",
    )
    p.add_argument("--out", required=True, help="output folder (media paths in the files are relative to it)")
    p.add_argument("--n-train", type=int, default=400, help="training clips (default: 400)")
    p.add_argument("--n-test", type=int, default=200, help="test clips (default: 200)")
    p.add_argument("--n-val", type=int, default=0,
                   help="validation clips: seen question types on clips of neither split, written to val.jsonl; "
                        "train and test stay byte-identical (default: 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--questions-per-clip", type=int, default=3)
    p.add_argument("--probes-per-clip", type=int, default=4, help="single-modality perception probes per clip")
    p.add_argument("--held-out", default=",".join(DEFAULT_HELD_OUT),
                   help=f"comma-separated question types kept out of training; from {', '.join(QUESTION_TYPES)}")
    p.add_argument("--option-order", choices=get_args(OptionOrder), default="shuffled",
                   help="options in random order, or in each attribute's fixed order (the demo's setting: a "
                        "letter then follows from the answer, with no option text to copy)")
    p.add_argument("--frame-size", type=int, default=56)
    p.add_argument("--fps", type=float, default=4.0, help="render rate (the model samples 2 fps from it)")
    p.add_argument("--workers", type=int, default=1, help="render processes")
    p.add_argument("--no-render", action="store_true", help="write the JSONL files only, no media")
    p.add_argument("--force", action="store_true",
                   help="render again even if --out holds a finished world of the same config")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_world)


def run_world(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from latentomni.data.world import generate_world

    held_out = tuple(t.strip() for t in args.held_out.split(",") if t.strip())
    started = time.perf_counter()
    try:
        manifest = generate_world(
            args.out, args.n_train, args.n_test, args.seed, workers=args.workers, render=not args.no_render,
            reuse=not args.force, progress=not args.quiet, questions_per_clip=args.questions_per_clip,
            perception_probes_per_clip=args.probes_per_clip, held_out_types=held_out, frame_size=args.frame_size,
            fps=args.fps, option_order=args.option_order, n_val_clips=args.n_val,
        )
    except ValidationError as e:
        print(f"latentomni world: invalid options:\n{e}")
        return 2
    elapsed = time.perf_counter() - started
    n_clips = manifest.counts["train_clips"] + manifest.counts["test_clips"] + manifest.counts["val_clips"]
    if manifest.render_seconds is not None:
        media = f"rendered {n_clips} clips at {n_clips / max(manifest.render_seconds, 1e-9):.1f} clips/s"
    else:
        media = "clips already rendered, reused" if manifest.rendered else "no media (--no-render)"
    print(f"wrote the world to {args.out} in {elapsed:.1f} s; {media}")
    for role, name in manifest.files.items():
        print(f"  {name:18s} {manifest.counts[role]:6d} records")
    print(f"  held-out question types: {', '.join(manifest.config.held_out_types)}")
    return 0
