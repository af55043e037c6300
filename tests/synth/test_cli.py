"""The ``synth`` sub-commands: registration, dry run, error exit codes."""

from __future__ import annotations

import argparse

import pytest

from latentomni.synth import cli
from latentomni.testing.chat_server import FakeChatServer, ScriptedReply

from .conftest import write_captions, write_config


def test_registers_every_stage_on_a_parent_parser():
    parser = argparse.ArgumentParser(prog="latentomni")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    for stage in [*cli.STAGE_HELP, "all"]:
        args = parser.parse_args(["synth", stage, "--config", "x.yaml", "--dry-run"])
        assert args.synth_stage == stage and args.dry_run and callable(args.func)


def test_dry_run_prints_every_prompt_and_sends_nothing(tmp_path, media_dir, capsys):
    with FakeChatServer(lambda body: ScriptedReply(status=500)) as server:
        captions = write_captions(tmp_path / "captions.jsonl", media_dir)
        config = write_config(tmp_path / "p.yaml", run_dir=tmp_path / "run", captions=captions, media_dir=media_dir,
                              urls=[server.base_url])
        assert cli.main(["all", "--config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert server.count == 0 and not (tmp_path / "run").exists()
    assert "13 records read: 9 usable, 4 would be dropped" in out
    for call in ("qa.llm (open)", "qa.llm (mcq)", "score.llm", "captions.video_llm", "captions.audio_llm",
                 "captions.fusion_llm", "captions.refine_llm", "captions.filter_llm", "trajectory.llm",
                 "trajectory.audit_llm"):
        assert f"## {call} -> model" in out, call
    assert "A crimson ball bounces twice" in out  # real data in the qa prompt
    assert "[Segment 1] 0.0s-2.0s: <grounded caption of segment 1>" in out
    assert "(response_format: json_object)" in out


def test_dry_run_of_one_stage_uses_its_real_input_when_present(tmp_path, media_dir, capsys):
    captions = write_captions(tmp_path / "captions.jsonl", media_dir)
    config = write_config(tmp_path / "p.yaml", run_dir=tmp_path / "run", captions=captions, media_dir=media_dir,
                          urls=["http://127.0.0.1:9/v1"])
    assert cli.main(["ingest", "--config", str(config), "--no-progress"]) == 0
    assert cli.main(["qa", "--config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("===== qa =====") == 1 and "A crimson ball" in out


def test_errors_exit_1_with_a_message(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("endpoints: {}\n")
    assert cli.main(["qa", "--config", str(bad)]) == 1
    assert "invalid synth config" in capsys.readouterr().err
    config = write_config(tmp_path / "p.yaml", run_dir=tmp_path / "run", captions=tmp_path / "none.jsonl",
                          media_dir=tmp_path, urls=["http://127.0.0.1:9/v1"])
    assert cli.main(["score", "--config", str(config)]) == 1
    assert "run `latentomni synth qa` first" in capsys.readouterr().err


def test_missing_api_key_stops_with_the_variable_name(tmp_path, media_dir, capsys, monkeypatch):
    monkeypatch.delenv("SYNTH_TEST_MISSING_KEY", raising=False)
    captions = write_captions(tmp_path / "captions.jsonl", media_dir)
    config = write_config(tmp_path / "p.yaml", run_dir=tmp_path / "run", captions=captions, media_dir=media_dir,
                          urls=["http://127.0.0.1:9/v1"])
    text = config.read_text().replace("response_format: json_schema", "response_format: json_schema\n"
                                      "    api_key_env: SYNTH_TEST_MISSING_KEY", 1)
    config.write_text(text)
    assert cli.main(["ingest", "--config", str(config), "--no-progress"]) == 0
    assert cli.main(["qa", "--config", str(config), "--no-progress"]) == 1
    assert "SYNTH_TEST_MISSING_KEY" in capsys.readouterr().err


def test_help_lists_the_stages(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(stage in out for stage in cli.STAGE_HELP)


def test_public_api_names_resolve_lazily():
    import importlib
    import sys

    synth = importlib.import_module("latentomni.synth")
    for name in synth.__all__:
        assert getattr(synth, name) is not None, name
    with pytest.raises(AttributeError):
        synth.no_such_name  # noqa: B018
    assert "latentomni.synth.cli" in sys.modules


def test_registering_the_cli_loads_neither_openai_nor_pyav():
    import subprocess
    import sys

    code = ("import argparse, sys, latentomni.synth.cli as c; "
            "c.add_parser(argparse.ArgumentParser().add_subparsers()); "
            "print(sorted(m for m in ('openai', 'av', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
