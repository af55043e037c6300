"""The ``latentomni`` command. Each area registers its own sub-commands (``<area>/cli.py``:
``add_parser(subparsers)``); this module only wires them, so importing the CLI stays cheap: an area's
``cli`` module imports torch, transformers or PyAV only inside the function that runs a command, and
``latentomni --help`` prints without loading a model library.

Two things every command shares live here, once: Ctrl-C ends a command with one line and exit status
130 instead of a ``KeyboardInterrupt`` traceback, and config errors are reported as one line naming the
file, the line and the field (:func:`yaml_error_line`, :func:`validation_error_line`).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


# -- one-line config errors -------------------------------------------------------------------------
def _node_path(node: Any, index: int, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The key path of the YAML node that starts at character ``index`` of the document."""
    import yaml

    if node.start_mark.index == index and path:
        return path
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            found = _node_path(value, index, (*path, name))
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _node_path(item, index, (*path, str(i)))
            if found is not None:
                return found
    return None


def yaml_error_line(path: str | Path, text: str, error: Exception, *, with_line: bool = True) -> str:
    """``FILE:LINE: FIELD: problem`` for a YAML error in ``text`` (read from ``path``). A tag (``!!python/...``,
    ``!include``) is refused by the safe loader; the message says so, and names the field it was on."""
    import yaml

    mark = getattr(error, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None and with_line else str(path)
    problem = str(getattr(error, "problem", None) or error).strip()
    if isinstance(error, yaml.constructor.ConstructorError) and "constructor for the tag" in problem:
        tag = problem.rsplit("tag ", 1)[-1].replace("tag:yaml.org,2002:", "!!")
        problem = f"YAML tag {tag} is not allowed (configs are plain YAML: no tags)"
        field = None
        if mark is not None:
            try:
                field = _node_path(yaml.compose(text, Loader=yaml.SafeLoader), mark.index)
            except yaml.YAMLError:
                field = None
        if field:
            return f"{where}: {'.'.join(field)}: {problem}"
        return f"{where}: {problem}"
    return f"{where}: not valid YAML ({problem})"


def _fields_at(model: Any, loc: Sequence[Any]) -> list[str]:
    """Field names of the pydantic model reached by following ``loc`` from ``model`` (for suggestions)."""
    from pydantic import BaseModel

    for key in loc:
        field = getattr(model, "model_fields", {}).get(key)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    known = getattr(model, "known_fields", None)  # a section that passes other keys through names them too
    return list(known()) if callable(known) else list(getattr(model, "model_fields", {}))


def validation_error_line(source: str, error: Any, model: Any = None) -> str:
    """One line for a pydantic ``ValidationError``: ``SOURCE: FIELD: problem``, the first error in full and
    how many more (with their fields). An unknown field gets the closest known name as a suggestion."""
    errors = error.errors()
    parts = []
    for err in errors[:1]:
        loc = list(err["loc"])
        field = ".".join(str(x) for x in loc) or "<top level>"
        if err["type"] == "extra_forbidden":
            known = _fields_at(model, loc[:-1]) if model is not None else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" (did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?)" if close else ""
            parts.append(f"{field}: unknown field{hint}")
        else:
            got = err.get("input")
            shown = f" (got {got!r})" if "input" in err and not isinstance(got, dict | list) else ""
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{field}: {msg}{shown}" if loc else f"{msg}")
    more = errors[1:]
    if more:
        fields = ", ".join(".".join(str(x) for x in e["loc"]) or "<top level>" for e in more[:3])
        parts.append(f"and {len(more)} more ({fields}{', ...' if len(more) > 3 else ''})")
    return f"{source}: " + "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
