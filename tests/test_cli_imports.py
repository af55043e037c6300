"""Building the ``latentomni`` parser is cheap: no area's ``cli`` module imports torch or transformers."""

from __future__ import annotations

import json
import subprocess
import sys

from latentomni import cli


def test_building_the_parser_loads_neither_torch_nor_transformers():
    code = ("import json, sys, latentomni.cli as c; p = c.build_parser(); "
            "cmds = sorted(p._subparsers._group_actions[0].choices); "
            "print(json.dumps([cmds, sorted(m for m in ('torch', 'transformers') if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    commands, heavy = json.loads(out)
    assert heavy == []
    assert {"infer", "train", "eval", "analyze", "synth", "world", "demo", "pretrain-base"} <= set(commands)


def test_help_prints_without_the_model_libraries():
    code = ("import sys, latentomni.cli as c\ntry:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "infer" in out and "train" in out and out.strip().endswith("HEAVY []")


def test_every_area_registers_its_commands():
    for name in cli.AREAS:
        module = __import__(name, fromlist=["add_parser"])
        assert callable(module.add_parser), name
