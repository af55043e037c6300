"""The ``latentomni`` command. Each area registers its own sub-commands (``<area>/cli.py``:
``add_parser(subparsers)``); this module only wires them, so importing the CLI stays cheap: an area's
``cli`` module imports torch, transformers or PyAV only inside the function that runs a command, and
``latentomni --help`` prints without loading a model library.

Two things every command shares live here, once: Ctrl-C ends a command with one line and exit status
130 instead of a ``KeyboardInterrupt`` traceback, and config errors are reported as one line naming the
file, the line and the field (:func:`latentomni.config.yaml_error_line`,
:func:`latentomni.config.validation_error_line`, in the bottom layer so that any config reader can use them).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Every area that contributes sub-commands, in help order.
AREAS = [
    "latentomni.inference.cli",
    "latentomni.train.cli",
    "latentomni.eval.cli",
    "latentomni.analysis.cli",
    "latentomni.synth.cli",
    "latentomni.data.cli",
    "latentomni.demo.cli",
]

# What an interrupted command tells the user; a sub-command overrides it with set_defaults(interrupt_hint=...).
RESUME_HINT = "rerun the same command to resume"
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="latentomni", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # area not present in this build
                continue
            raise
        module.add_parser(sub)
    return parser


def run(args: argparse.Namespace, prog: str = "latentomni") -> int:
    """Run a parsed command. Ctrl-C prints one line (every command resumes or can be rerun) and
    returns 130; the stage stores, the eval rows and the checkpoints already written stay valid."""
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        command = " ".join(filter(None, (prog, getattr(args, "command", None))))
        print(f"{command}: interrupted; {getattr(args, 'interrupt_hint', RESUME_HINT)}", file=sys.stderr)
        return INTERRUPTED_EXIT


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
