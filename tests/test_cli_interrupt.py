"""Ctrl-C (a real SIGINT to a subprocess running the ``latentomni`` command) ends a command with one line
that says how to resume and exit status 130, never a ``KeyboardInterrupt`` traceback.

The commands are caught while they block reading a named pipe: ``eval`` reading its predictor config (before
any model), ``train`` reading its training file (after loading the tiny base), so the signal lands at a known
point without sleeping on timing. ``synth`` is interrupted mid-request in ``tests/synth/test_resume.py``.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lo_testing import sigint_as_a_terminal_sends_it

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")


def _interrupt_while_reading(fifo: Path, argv: list[str], stderr_path: Path, timeout_s: float = 240) -> tuple[int, str]:
    """Start ``latentomni ARGV``, wait until it has opened ``fifo`` for reading, send SIGINT."""
    with stderr_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "latentomni.cli", *argv], stdout=subprocess.DEVNULL,
                                stderr=err, preexec_fn=sigint_as_a_terminal_sends_it)
    writer = None
    try:
        deadline = time.monotonic() + timeout_s
        while writer is None:
            try:  # succeeds only once a reader holds the pipe open
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the command never read {fifo}: {stderr_path.read_text()[-2000:]}")
                time.sleep(0.05)
        time.sleep(0.2)  # now blocked in read(): nothing is written, the write end stays open
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(60)
    finally:
        if writer is not None:
            os.close(writer)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, stderr_path.read_text()


def test_eval_interrupted_says_how_to_resume(tmp_path: Path):
    fifo = tmp_path / "predictor.yaml"
    os.mkfifo(fifo)
    argv = ["eval", "--model", "m", "--benchmark", "Daily-Omni", "--annotations", str(tmp_path / "qa.json"),
            "--media-root", str(tmp_path), "--config", str(fifo)]
    rc, err = _interrupt_while_reading(fifo, argv, tmp_path / "stderr.txt")
    assert rc == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1] == "latentomni eval: interrupted; rerun the same command to resume"


def test_train_interrupted_says_rerun_with_resume(tmp_path: Path, tiny_base_dir: Path):
    fifo = tmp_path / "train.jsonl"
    os.mkfifo(fifo)
    config = tmp_path / "train.yaml"
    config.write_text(f"model: {{base: {tiny_base_dir}, dtype: float32}}\n"
                      "latent: {num_latents: 8, num_visual: 6, num_audio: 2}\n"
                      f"data: {{train_file: {fifo}}}\n"
                      f"training: {{output_dir: {tmp_path / 'out'}, max_steps: 1, report_to: []}}\n")
    rc, err = _interrupt_while_reading(fifo, ["train", "--config", str(config)], tmp_path / "stderr.txt")
    assert rc == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1] == ("latentomni train: interrupted; rerun it with --resume to continue from "
                                            "the newest checkpoint in training.output_dir")
