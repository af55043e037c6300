"""``latentomni train``: a bad config ends in one line naming the file (or ``--set``), the field and the
problem, never in a traceback (a missing file, an unknown field, a YAML tag, an invalid value)."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentomni import cli

GOOD = "model: {base: some/base}\ndata: {train_file: train.jsonl}\ntraining:\n  output_dir: out\n"


def _train(capsys, *args: str) -> str:
    assert cli.main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_a_missing_config_file(tmp_path: Path, capsys):
    line = _train(capsys, "--config", str(tmp_path / "nope.yaml"))
    assert line == f"latentomni train: error: {tmp_path / 'nope.yaml'}: cannot read the training config " \
                   "(No such file or directory)"


def test_an_unknown_field_names_the_file_that_sets_it_and_suggests_the_name(tmp_path: Path, capsys):
    (tmp_path / "parent.yaml").write_text(GOOD + "  lerning_rate: 1.0e-4\n")
    (tmp_path / "child.yaml").write_text("inherit: parent.yaml\ntraining: {max_steps: 3}\n")
    line = _train(capsys, "--config", str(tmp_path / "child.yaml"))
    assert line == (f"latentomni train: error: {tmp_path / 'parent.yaml'}: training.lerning_rate: unknown field "
                    "(did you mean training.learning_rate?)")


def test_an_unknown_field_from_set(tmp_path: Path, capsys):
    (tmp_path / "c.yaml").write_text(GOOD)
    line = _train(capsys, "--config", str(tmp_path / "c.yaml"), "--set", "latent.num_latent=8")
    assert "--set latent.num_latent=8: latent.num_latent: unknown field (did you mean latent.num_latents?)" in line


@pytest.mark.parametrize("value", ['!!python/object/apply:os.system ["echo pwned"]', "!include other.yaml"])
def test_a_yaml_tag_names_file_line_and_field(tmp_path: Path, capsys, value):
    (tmp_path / "c.yaml").write_text(GOOD.replace("output_dir: out", f"output_dir: {value}"))
    line = _train(capsys, "--config", str(tmp_path / "c.yaml"))
    tag = value.split()[0]
    assert line.startswith(f"latentomni train: error: {tmp_path / 'c.yaml'}:4: training.output_dir: "
                           f"YAML tag '{tag}' is not allowed")


# (the config file's text, the file the line must name, and what it must say about it)
BAD_FILES = {
    "a missing inherited file": ("inherit: parent.yaml\n", "parent.yaml", ": cannot read the training config"),
    "invalid YAML: file and line": ("model: {base: x\n", "c.yaml", ":2: not valid YAML"),
    "an invalid value: field and value": (GOOD + "  warmup_ratio: 3\n", "c.yaml",
                                          ": training.warmup_ratio: Input should be less than 1 (got 3)"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_named_with_its_problem(tmp_path: Path, capsys, case):
    text, named, says = BAD_FILES[case]
    (tmp_path / "c.yaml").write_text(text)
    assert f"{tmp_path / named}{says}" in _train(capsys, "--config", str(tmp_path / "c.yaml"))


def test_a_valid_config_still_prints(tmp_path: Path, capsys):
    (tmp_path / "c.yaml").write_text(GOOD)
    assert cli.main(["train", "--config", str(tmp_path / "c.yaml"), "--print-config"]) == 0
    assert '"output_dir": "out"' in capsys.readouterr().out
