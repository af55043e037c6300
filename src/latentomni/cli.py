"""The ``latentomni`` command. Each area registers its own sub-commands (``<area>/cli.py``:
``add_parser(subparsers)``); this module only wires them so that importing the CLI stays cheap."""

from __future__ import annotations

import argparse
import importlib
import sys

# Every area that contributes sub-commands, in help order.
AREAS = [
    "latentomni.inference",
    "latentomni.train.cli",
    "latentomni.eval.cli",
    "latentomni.analysis.cli",
    "latentomni.synth.cli",
    "latentomni.data.cli",
    "latentomni.demo.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="latentomni", description=__doc__)
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
