"""End-to-end training on the tiny model: checkpoints, per-term logs, bad media, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from latentomni.model.wrapper import LatentOmniModel
from lo_testing import make_sample, write_train_config


@pytest.fixture
def train_setup(tmp_path, tiny_base_dir, clip_dir):
    rows = [make_sample(f"s{i}", video=str(clip_dir / ("clip4.mp4" if i % 2 else "clip3.mp4")),
                        blocks=((0.0, 1.5), (1.5, 3.0))) for i in range(6)]
    rows.append(make_sample("no-audio", video=str(clip_dir / "silent.mp4"), blocks=((0.0, 1.0),)))
    rows.append(make_sample("corrupt", video=str(clip_dir / "corrupt.mp4")))
    cfg = write_train_config(tmp_path, tiny_base_dir, rows)
    return cfg, tmp_path / "out"


def _run(cfg, *extra):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "latentomni.cli", "train", "--config", str(cfg), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_train_writes_loadable_checkpoints_and_per_term_logs(train_setup):
    from latentomni.cli import main

    cfg, out = train_setup
    assert main(["train", "--config", str(cfg)]) == 0
    results = json.loads((out / "train_results.json").read_text())
    assert results["global_step"] == 4 and results["train_samples"] == 6
    assert results["skipped"] == {"no audio track": 1, "cannot open media": 1}
    skipped = [json.loads(line)["id"] for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert sorted(skipped) == ["corrupt", "no-audio"]
    logs = json.loads((out / "trainer_state.json").read_text())["log_history"]
    step_logs = [r for r in logs if "loss" in r]
    assert len(step_logs) == 4
    for r in step_logs:
        assert {"loss_text", "loss_latent", "loss_sync", "temperature"} <= r.keys()
    model = LatentOmniModel.from_pretrained(out / "checkpoint-2")
    assert model.latent.num_latents == 8
    LatentOmniModel.from_pretrained(out)


def test_resume_after_kill_continues_from_the_last_checkpoint(train_setup):
    cfg, out = train_setup
    over = ["--set", "training.max_steps=8"]
    proc = _run(cfg, *over)
    deadline = time.time() + 240
    while not (out / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "train_results.json").exists(), "the run was killed before finishing"
    done = _run(cfg, *over, "--resume")
    log, _ = done.communicate(timeout=300)
    assert done.returncode == 0, log
    results = json.loads((out / "train_results.json").read_text())
    step = results["resumed_at_step"]
    assert step >= 2 and results["resumed_from"].endswith(f"checkpoint-{step}")
    assert results["global_step"] == 8
    steps = [r["step"] for r in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in r]
    assert steps[-1] == 8 and sorted(set(steps)) == steps, "no step was trained twice in the log"
