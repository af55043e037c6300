"""Kill a stage mid-run (a real SIGKILL of a subprocess running the CLI), run it again: nothing lost,
nothing duplicated, and no request whose response was cached is sent a second time."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from latentomni.synth.client import cache_key
from latentomni.synth.config import load_config
from latentomni.synth.pipeline import run_stages
from latentomni.synth.store import StageStore
from latentomni.testing.chat_server import CannedResponder, FakeChatServer, ScriptedReply
from lo_testing import sigint_as_a_terminal_sends_it

from .conftest import caption_record, write_config

N_CLIPS = 30
OPEN = json.dumps({"question": "In scene qopen, what rings when the teal ball lands?", "answer": "the bell",
                   "reasoning_type": "causal"})
MCQ = json.dumps({"question": "In scene qmcq, which sound follows the landing of the teal ball?",
                  "options": {"A": "A bell", "B": "A dog", "C": "A horn", "D": "Rain"}, "answer": "A",
                  "reasoning_type": "temporal"})


def _cached_keys(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT key FROM responses")}


def _synth(config: Path, stage: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "latentomni.synth.cli", stage, "--config", str(config),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_killed_stage_resumes_without_loss_or_duplicates(tmp_path, media_dir):
    captions = tmp_path / "captions.jsonl"
    records = []
    for i in range(N_CLIPS):
        rec = caption_record("teal", "teal.mp4", 4.0)
        rec.update(id=f"clip-{i:03d}", caption=rec["caption"] + f" Take {i}.")  # distinct prompts
        records.append(json.dumps(rec))
    captions.write_text("\n".join(records) + "\n")
    responder = CannedResponder([("OpenQAReply", OPEN), ("MCQReply", MCQ)], delay_s=0.03)
    with FakeChatServer(responder, idle_timeout_s=60) as server:
        config = write_config(tmp_path / "p.yaml", run_dir=tmp_path / "run", captions=captions, media_dir=media_dir,
                              urls=[server.base_url], concurrency=2, timeout_s=10.0)
        cfg = load_config(config)
        run_stages(cfg, ["ingest"], progress=False, log=None)
        store = StageStore(cfg.run_dir, "qa")
        units = {f"clip-{i:03d}:{fmt}0" for i in range(N_CLIPS) for fmt in ("open", "mcq")}

        proc = _synth(config, "qa")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if store.out_path.exists() and store.out_path.read_text().count("\n") >= 15:
                break
            time.sleep(0.01)
        proc.kill()
        proc.wait(10)
        done_at_kill = store.done_ids()
        assert 15 <= len(done_at_kill) < len(units), "the kill did not land mid-stage"
        cached = _cached_keys(cfg.run_dir / "cache.sqlite")
        sent_before = len(server.bodies)

        (summary,) = run_stages(load_config(config), ["qa"], progress=False, log=None)  # the rerun
        resent = server.bodies[sent_before:]

    outputs = [r["id"] for r in store.outputs()]
    assert len(outputs) == len(set(outputs)), "duplicated records"
    assert set(outputs) | {d.id for d in store.drops()} == units and not store.drops(), "lost records"
    assert not any(cache_key(body) in cached for body in resent), "a cached request was sent again"
    assert len(resent) + len(cached) == len(units)  # every unit answered exactly once overall
    assert (summary.inputs, summary.outputs, summary.pending) == (len(units), len(units), 0)
    # units finished before the kill are skipped; units whose response was cached but not yet written hit the cache
    assert summary.traffic["cache_hits"] == len(cached) - len(done_at_kill)
    assert summary.traffic["requests_sent"] == len(resent)


def test_retry_failed_keeps_the_records_it_retries(tmp_path, media_dir):
    """An outage drops every QA unit as request_failed; `--retry-failed request_failed` after it redoes them,
    and the retried records are in qa.jsonl afterwards (they were once written to the replaced file)."""
    captions = tmp_path / "captions.jsonl"
    captions.write_text("\n".join(json.dumps({**caption_record("teal", "teal.mp4", 4.0), "id": f"clip-{i}"})
                                  for i in range(3)) + "\n")
    units = {f"clip-{i}:{fmt}0" for i in range(3) for fmt in ("open", "mcq")}
    with FakeChatServer(lambda body: ScriptedReply(status=500, error_message="down")) as down:
        config = write_config(tmp_path / "p.yaml", run_dir=tmp_path / "run", captions=captions, media_dir=media_dir,
                              urls=[down.base_url], concurrency=2)
        run_stages(load_config(config), ["ingest"], progress=False, log=None)
        (summary,) = run_stages(load_config(config), ["qa"], progress=False, log=None)
    assert summary.dropped == {"request_failed": len(units)}
    with FakeChatServer(CannedResponder([("OpenQAReply", OPEN), ("MCQReply", MCQ)])) as up:
        write_config(config, run_dir=tmp_path / "run", captions=captions, media_dir=media_dir, urls=[up.base_url])
        (summary,) = run_stages(load_config(config), ["qa"], retry_failed=["request_failed"], progress=False, log=None)
    store = StageStore(tmp_path / "run", "qa")
    assert {r["id"] for r in store.outputs()} == units and store.drops() == []
    assert (summary.outputs, summary.dropped, summary.pending) == (len(units), {}, 0)


def test_ctrl_c_mid_stage_prints_one_line_and_a_rerun_finishes(tmp_path, media_dir):
    """SIGINT while every request waits on a slow server: exit 130, one line saying to rerun, no traceback;
    the rerun of the same command against a working server completes the stage."""
    import signal

    captions = tmp_path / "captions.jsonl"
    captions.write_text("\n".join(json.dumps({**caption_record("teal", "teal.mp4", 4.0), "id": f"clip-{i}"})
                                  for i in range(2)) + "\n")
    stalled = CannedResponder([("OpenQAReply", OPEN), ("MCQReply", MCQ)], delay_s=60)
    with FakeChatServer(stalled, idle_timeout_s=120) as slow:
        config = write_config(tmp_path / "p.yaml", run_dir=tmp_path / "run", captions=captions, media_dir=media_dir,
                              urls=[slow.base_url], concurrency=2, timeout_s=120.0)
        run_stages(load_config(config), ["ingest"], progress=False, log=None)
        proc = subprocess.Popen([sys.executable, "-m", "latentomni.cli", "synth", "qa", "--config", str(config),
                                 "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=sigint_as_a_terminal_sends_it)
        deadline = time.monotonic() + 60
        while slow.count < 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert slow.count >= 1, "the stage never sent a request"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == "latentomni synth: interrupted; rerun the same command to resume"
    with FakeChatServer(CannedResponder([("OpenQAReply", OPEN), ("MCQReply", MCQ)])) as up:
        write_config(config, run_dir=tmp_path / "run", captions=captions, media_dir=media_dir, urls=[up.base_url])
        rerun = subprocess.run([sys.executable, "-m", "latentomni.cli", "synth", "qa", "--config", str(config),
                                "--no-progress"], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert {r["id"] for r in StageStore(tmp_path / "run", "qa").outputs()} == {
        f"clip-{i}:{fmt}0" for i in range(2) for fmt in ("open", "mcq")}
