"""Where the demo finds its configs: ``configs/demo`` under the working directory (``make demo`` runs from the
repository root) or ``--configs DIR``, never a path counted up from the package (which an installed wheel lacks).
A folder that is not there is one line naming it and the working directory, before any world is generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentomni.cli import main
from latentomni.demo.run import CONFIG_DIR, VARIANTS, DemoSettings, _config

REPO = Path(__file__).resolve().parents[2]


def test_the_default_is_relative_to_the_working_directory_and_the_repository_root_has_every_variant(
        tmp_path, monkeypatch):
    assert not CONFIG_DIR.is_absolute()
    monkeypatch.chdir(REPO)
    settings = DemoSettings(out=tmp_path / "demo")
    for name in VARIANTS:
        assert _config(settings, name, tmp_path).data.train_file == str(tmp_path / "train.jsonl")


def test_outside_the_repository_the_demo_says_where_it_looked_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 2
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1
    assert f"no folder configs/demo under the working directory {tmp_path}" in out and "--configs DIR" in out
    assert not (tmp_path / "demo").exists()


def test_a_configs_folder_missing_one_config_names_that_file(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "latent.yaml").write_text((REPO / "configs" / "demo" / "latent.yaml").read_text())
    settings = DemoSettings(out=tmp_path / "demo", config_dir=tmp_path / "configs")
    with pytest.raises(FileNotFoundError, match=r"demo configs: .*configs/vanilla.yaml not found; --configs "):
        _config(settings, "vanilla", tmp_path)
