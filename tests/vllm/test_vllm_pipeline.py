"""``make test-vllm``: ``latentomni synth all`` against a real vLLM server started here (issue #7).

The server runs from its own venv (``scripts/vllm_env.sh``) with a tiny chat model built on the spot
(:mod:`latentomni.testing.vllm_server`), reached under two base URLs so the round-robin runs. Every text
call of the pipeline goes to vLLM with its reply schema in ``response_format`` (xgrammar). The media
calls of the captions stage go to a scripted stand-in captioner, since the tiny model reads no video;
what vLLM itself says to media parts is checked separately: a recorded drop, not a crash.

One module-scoped run, several assertions. Request counts stay small (four clips): the machine has
two cores and the server shares them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from latentomni.data.render import render_av, tone
from latentomni.synth.card import DROP_REASONS, STAGE_ORDER
from latentomni.synth.store import StageStore
from latentomni.testing.chat_server import FakeChatServer, ScriptedReply
from latentomni.testing.vllm_server import STAND_IN_CAPTIONS, VLLMServer, build_tiny_chat_model, vllm_python

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[2]
VLLM_VENV = ROOT / ".venv-vllm"  # made by `make test-vllm` (scripts/vllm_env.sh)
TEXT_CALLS = ["qa.llm", "score.llm", "captions.fusion_llm", "captions.refine_llm", "captions.filter_llm",
              "trajectory.llm", "trajectory.audit_llm"]
LLM_STAGES = ["qa", "score", "captions", "trajectory"]


# -- inputs -----------------------------------------------------------------------------------------
def make_inputs(folder: Path) -> Path:
    """Four 2 s clips (one without a sound track) with caption records, plus one broken line."""
    lines = []
    for i, colour in enumerate(["red", "blue", "green", "grey"]):
        frames = (np.random.default_rng(i).random((20, 32, 48, 3)) * 255).astype(np.uint8)
        sound = None if colour == "grey" else tone(300 + 100 * i, 2.0, 16000)
        render_av(folder / f"{colour}.mp4", frames, 10, sound, sample_rate=16000)
        lines.append(json.dumps({
            "id": f"clip-{colour}", "media": f"{colour}.mp4", "duration": 2.0,
            "caption": f"A {colour} ball falls onto a wooden floor and a bell rings once as it lands.",
            "events": [{"start": 0.0, "end": 1.0, "modality": "visual", "text": f"A {colour} ball falls."},
                       {"start": 0.8, "end": 1.2, "modality": "audio", "text": "A bell rings once."}],
        }))
    lines.append("{this line is not JSON")
    path = folder / "captions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def stand_in_captioner(body: dict[str, Any]) -> ScriptedReply:
    """The media model's part: one fixed caption per modality; anything else is a test error."""
    parts = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]]
    kinds = {p.get("type") for p in parts}
    if "video_url" in kinds:
        return ScriptedReply(STAND_IN_CAPTIONS["video"])
    if "input_audio" in kinds:
        return ScriptedReply(STAND_IN_CAPTIONS["audio"])
    return ScriptedReply(status=500, error_message="the stand-in captioner only answers media requests")


def write_config(path: Path, *, run_dir: Path, captions: Path, text_urls: list[str], media_urls: list[str],
                 model: str) -> Path:
    def call(endpoint: str) -> dict[str, Any]:
        return {"endpoint": endpoint, "model": model, "sampling": {"temperature": 0.0, "max_tokens": 256}}

    cfg = {
        "run_dir": str(run_dir),
        "endpoints": {
            "text": {"base_urls": text_urls, "response_format": "json_schema", "max_concurrency": 8,
                     "timeout_s": 120},
            "media": {"base_urls": media_urls, "response_format": "none", "max_concurrency": 4, "timeout_s": 120},
        },
        "retry": {"max_attempts": 3, "base_delay_s": 0.2, "max_delay_s": 2.0, "invalid_reply_attempts": 1},
        "stages": {
            "ingest": {"inputs": [{"path": str(captions)}], "min_duration_s": 1.0},
            "qa": {"llm": call("text"), "formats": ["open", "mcq"], "concurrency": 8},
            "score": {"llm": call("text"), "concurrency": 8},
            "segment": {"mode": "fixed", "length_s": 2.0, "min_length_s": 1.0, "workers": 1},
            "captions": {"video_llm": call("media"), "audio_llm": call("media"), "fusion_llm": call("text"),
                         "refine_llm": call("text"), "filter_llm": call("text"), "concurrency": 8},
            "trajectory": {"llm": call("text"), "audit_llm": call("text"), "concurrency": 8},
        },
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def synth(stage: str, config: Path) -> subprocess.CompletedProcess[str]:
    """``latentomni synth STAGE`` in a child process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "latentomni.cli", "synth", stage, "--config", str(config),
                           "--no-progress"], capture_output=True, text=True, timeout=300, cwd=ROOT)


def summaries(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {name: StageStore(run_dir, name).read_summary() for name in STAGE_ORDER}


# -- the run ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vllm(tmp_path_factory):
    """The server, stopped by its PID whatever happens in the tests."""
    state = VLLM_VENV / "state"  # kept between runs: vLLM's compile cache and the built model
    started = time.monotonic()
    model = build_tiny_chat_model(state / "tiny-chat")
    built_s = time.monotonic() - started
    with VLLMServer(vllm_python(VLLM_VENV), model, state) as server:
        print(f"\ntiny model ready in {built_s:.0f} s; vLLM server (pid {server.pid}) up in {server.startup_s} s")
        yield server


@pytest.fixture(scope="module")
def run(vllm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vllm_pipeline")
    captions = make_inputs(tmp)
    with FakeChatServer(stand_in_captioner, idle_timeout_s=600, lifetime_s=1200) as captioner:
        config = write_config(tmp / "pipeline.yaml", run_dir=tmp / "run", captions=captions,
                              text_urls=vllm.base_urls, media_urls=[captioner.base_url],
                              model=vllm.served_model_name)
        first = synth("all", config)
        served_first = vllm.completions_served()
        first_summaries = summaries(tmp / "run")
        train = (tmp / "run" / "train.jsonl").read_bytes() if first.returncode == 0 else b""

        resumed = synth("all", config)  # every stage finished: nothing to do
        served_resumed = vllm.completions_served()

        for name in ("stages", "summaries"):  # forget all outputs, keep the response cache
            shutil.rmtree(tmp / "run" / name)
        (tmp / "run" / "train.jsonl").unlink(missing_ok=True)
        replayed = synth("all", config)
        served_replayed = vllm.completions_served()
        captioner_bodies = list(captioner.bodies)

    # the segments of the first run, captioned by vLLM itself, which reads no media
    media_run = tmp / "media_run"
    (media_run / "stages").mkdir(parents=True)
    for name in STAGE_ORDER[:STAGE_ORDER.index("segment") + 1]:
        for suffix in (".jsonl", ".drops.jsonl"):
            shutil.copy(tmp / "run" / "stages" / f"{name}{suffix}", media_run / "stages")
    media_config = write_config(tmp / "media.yaml", run_dir=media_run, captions=captions,
                                text_urls=vllm.base_urls, media_urls=vllm.base_urls, model=vllm.served_model_name)
    media = synth("captions", media_config)
    return {"tmp": tmp, "first": first, "resumed": resumed, "replayed": replayed, "media": media,
            "served": (served_first, served_resumed, served_replayed, vllm.completions_served()),
            "summaries": first_summaries, "replayed_summaries": summaries(tmp / "run"), "train": train,
            "captioner_bodies": captioner_bodies, "media_run": media_run, "vllm": vllm}


def _table(s: dict[str, dict[str, Any]]) -> str:
    return "\n".join(f"{name:<11} in={v['inputs']} out={v['outputs']} dropped={v['dropped']}" for name, v in s.items())


def test_the_run_finishes_without_an_unhandled_exception(run):
    for key in ("first", "resumed", "replayed", "media"):
        proc = run[key]
        assert proc.returncode == 0, f"{key} run failed:\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    print("\n" + _table(run["summaries"]))


def test_every_text_call_went_to_vllm(run):
    sent = {}
    for name in LLM_STAGES:
        for call, n in run["summaries"][name]["traffic"]["requests_by_call"].items():
            sent[call] = sent.get(call, 0) + n
    assert all(sent.get(call, 0) > 0 for call in TEXT_CALLS), sent
    text_sent = sum(n for call, n in sent.items() if call in TEXT_CALLS)
    assert run["served"][0] == text_sent  # vLLM's access log saw each of them
    # the stand-in answered the media requests and nothing else
    media_sent = sent["captions.video_llm"] + sent["captions.audio_llm"]
    assert len(run["captioner_bodies"]) == media_sent > 0


def test_round_robin_reached_both_base_urls(run):
    by_url: dict[str, int] = {}
    for name in LLM_STAGES:
        for url, n in run["summaries"][name]["traffic"]["requests_by_url"].items():
            by_url[url] = by_url.get(url, 0) + n
    assert all(by_url.get(url, 0) > 0 for url in run["vllm"].base_urls), by_url


def test_every_record_is_an_output_or_a_drop_with_a_reason(run):
    run_dir = run["tmp"] / "run"
    for name, s in run["summaries"].items():
        assert s["pending"] == 0 and s["inputs"] == s["outputs"] + s["dropped_total"], (name, s)
        for drop in StageStore(run_dir, name).drops():
            assert drop.reason in DROP_REASONS and drop.detail, (name, drop)
    assert run["summaries"]["ingest"]["dropped"] == {"invalid_json": 1}
    assert run["summaries"]["segment"]["dropped"] == {"no_audio_track": 2}
    assert run["summaries"]["assemble"]["outputs"] > 0  # items made it through every stage


def test_second_runs_send_nothing(run):
    first, resumed, replayed, _ = run["served"]
    assert resumed == first and replayed == first
    for name in LLM_STAGES:
        traffic = run["replayed_summaries"][name]["traffic"]
        assert traffic["requests_sent"] == 0 and traffic["cache_hits"] > 0, (name, traffic)
    assert (run["tmp"] / "run" / "train.jsonl").read_bytes() == run["train"]
    counts = {n: (s["inputs"], s["outputs"], s["dropped"]) for n, s in run["summaries"].items()}
    assert counts == {n: (s["inputs"], s["outputs"], s["dropped"]) for n, s in run["replayed_summaries"].items()}


def test_dataset_card_lists_the_counts(run):
    run_dir = run["tmp"] / "run"
    card = json.loads((run_dir / "card.json").read_text())
    assert [s["stage"] for s in card["stages"]] == STAGE_ORDER
    for row in card["stages"]:
        s = run["replayed_summaries"][row["stage"]]
        assert (row["in"], row["out"], row["dropped"]) == (s["inputs"], s["outputs"], s["dropped_total"])
    markdown = (run_dir / "card.md").read_text()
    for stage, reasons in ((s["stage"], s["drop_reasons"]) for s in card["stages"]):
        for reason, n in reasons.items():
            assert f"| {stage} | {reason} | {n} | {DROP_REASONS[reason]} |" in markdown
    # the taught trajectory boxes an open answer: the multiple-choice ones fail the rules, and the card says so
    assert card["stages"][STAGE_ORDER.index("trajectory")]["drop_reasons"].get("answer_mismatch", 0) > 0


def test_media_sent_to_a_text_only_vllm_is_a_recorded_drop(run):
    s = StageStore(run["media_run"], "captions").read_summary()
    assert s["inputs"] > 0 and s["dropped"] == {"request_rejected": s["inputs"]}, s
    drops = StageStore(run["media_run"], "captions").drops()
    assert all("not a multimodal model" in d.detail for d in drops), drops[0].detail
