"""The typed pipeline config: validation messages, path resolution, API keys, the shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from latentomni.synth.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]


def _minimal(**over):
    call = {"endpoint": "text", "model": "m"}
    cfg = {"endpoints": {"text": {"base_urls": ["http://127.0.0.1:8000/v1"]}},
           "stages": {"qa": {"llm": call}, "score": {"llm": call},
                      "captions": {k: call for k in ("video_llm", "audio_llm", "fusion_llm", "refine_llm",
                                                      "filter_llm")},
                      "trajectory": {"llm": call, "audit_llm": call}}}
    cfg.update(over)
    return cfg


def test_defaults_follow_the_paper(tmp_path):
    cfg = parse_config(_minimal(), base=tmp_path)
    assert cfg.stages.score.min_total == 13 and cfg.stages.balance.max_ratio == 3.0
    assert cfg.stages.trajectory.max_citations == 3 and cfg.stages.segment.audio_rate == 16000
    assert cfg.stages.qa.llm.sampling.seed is None
    assert cfg.run_dir == tmp_path / "runs" / "synth" and cfg.stages.assemble.output == cfg.run_dir / "train.jsonl"


@pytest.mark.parametrize("mutate, needle", [
    (lambda c: c["stages"]["qa"]["llm"].update(endpoint="nope"), "stages.qa.llm.endpoint: 'nope' is not defined"),
    (lambda c: c["stages"]["score"].update(min_total=20), "stages.score.min_total"),
    (lambda c: c["endpoints"]["text"].update(base_urls=["localhost:8000"]), "must start with http"),
    (lambda c: c["endpoints"]["text"].update(response_format="xml"), "endpoints.text.response_format"),
    (lambda c: c["stages"]["qa"].update(formats=["essay"]), "stages.qa.formats.0"),
    (lambda c: c["stages"]["qa"]["llm"].update(sampling={"temperature": 3}), "temperature"),
    (lambda c: c["stages"]["qa"].update(typo=1), "stages.qa.typo: Extra inputs are not permitted"),
])
def test_errors_name_the_key(tmp_path, mutate, needle):
    cfg = _minimal()
    mutate(cfg)
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        parse_config(cfg, base=tmp_path, source="x.yaml")


def test_yaml_errors_give_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("endpoints:\n  text: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_config(p)


def test_api_key_comes_from_the_named_variable_only(tmp_path, monkeypatch):
    cfg = parse_config(_minimal(endpoints={"text": {"base_urls": ["http://h/v1"], "api_key_env": "SYNTH_TEST_KEY"}}),
                       base=tmp_path)
    monkeypatch.delenv("SYNTH_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="SYNTH_TEST_KEY"):
        cfg.endpoints["text"].api_key("text")
    monkeypatch.setenv("SYNTH_TEST_KEY", "sk-secret-value")
    assert cfg.endpoints["text"].api_key("text") == "sk-secret-value"
    assert "sk-secret-value" not in repr(cfg) and "sk-secret-value" not in cfg.model_dump_json()


def test_shipped_example_config_is_valid():
    cfg = load_config(REPO / "configs" / "synth" / "pipeline.yaml")
    assert cfg.stages.qa.llm.endpoint in cfg.endpoints
    assert all(call.endpoint in cfg.endpoints for call in cfg.llm_calls().values())
    raw = yaml.safe_load((REPO / "configs" / "synth" / "pipeline.yaml").read_text())
    assert "api_key" not in str(raw).replace("api_key_env", "")
