"""``latentomni infer``: answer one question about a video (and/or audio) with latent reasoning.

The command lives apart from :mod:`latentomni.inference.predictor` because that module imports
torch at the top; registering the command must not, so that ``latentomni --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("infer", help="answer one question about a video (and/or audio) with latent reasoning")
    p.add_argument("--model", required=True, help="a LatentOmni checkpoint directory")
    p.add_argument("--video", type=Path)
    p.add_argument("--audio", type=Path, help="a separate audio file (otherwise the video's own track is used)")
    p.add_argument("--question", required=True)
    p.add_argument("--options", nargs="+", help='options, e.g. "A. red" "B. blue"')
    p.add_argument("--use-audio-in-video", action=argparse.BooleanOptionalAction, default=True,
                   help="use the video's audio track, interleaved with its frames (qwen-omni-utils' flag)")
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--max-frames", type=int, default=256)
    p.add_argument("--max-pixels", type=int, default=448 * 448)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int)
    p.add_argument("--system-prompt")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_infer, interrupt_hint="nothing was written; rerun the same command")


def _infer(args: argparse.Namespace) -> int:
    from ..data.answers import extract_choice, last_boxed
    from ..data.media import MediaError
    from ..data.questions import ANSWER_INSTRUCTION
    from .predictor import LatentOmniPredictor

    if args.video is None and args.audio is None:
        print("error: give --video and/or --audio", file=sys.stderr)
        return 2
    pred = LatentOmniPredictor(args.model, fps=args.fps, max_frames=args.max_frames, max_pixels=args.max_pixels,
                               use_audio_in_video=args.use_audio_in_video, system_prompt=args.system_prompt,
                               max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                               temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                               prefer_separate_audio=args.audio is not None)
    question = "\n".join([args.question, *(args.options or []), *([ANSWER_INSTRUCTION] if args.options else [])])
    try:
        enc, _, note = pred.encode(question, args.video, args.audio, use_audio=True)
    except MediaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = pred.generate([enc])
    text = out.texts[0]
    answer = extract_choice(text, args.options) if args.options else last_boxed(text)
    if args.json:
        print(json.dumps({"reply": text, "answer": answer, "n_latent_blocks": out.num_blocks[0],
                          "note": note, "settings": pred.settings()}))
    else:
        if note:
            print(f"[{note}]")
        print(text)
        print(f"\nanswer: {answer if answer is not None else '(no parseable answer)'}")
    return 0
