"""One process: a step's loss is its global batch's however it is split into accumulation micro-batches
(each term of Eq. 7 normalised by the step's own item counts). The multi-process version is make test-dist."""

import json

import pytest

from lo_testing import make_sample, write_train_config

TAILS = ["It is blue.", "It is blue, because the high tone plays while the blue square is on screen.", "Blue.",
         "The square that is on screen while the tone plays is blue, so the answer is blue."]


@pytest.fixture
def config(tmp_path, tiny_base_dir, clip_dir):
    rows = [make_sample(f"s{i}", video=str(clip_dir / ("clip4.mp4" if i % 2 else "clip3.mp4")),
                        blocks=((0.0, 1.5), (1.5, 3.0))[: 1 + i % 2], tail=TAILS[i]) for i in range(4)]
    cfg = write_train_config(tmp_path, tiny_base_dir, rows, max_steps=1, per_device_train_batch_size=4,
                             warmup_ratio=0, save_steps=10)
    return cfg, tmp_path


def _first_step(cfg, out, *sets):
    from latentomni.cli import main

    assert main(["train", "--config", str(cfg), "--set", f"training.output_dir={out}", *sets]) == 0
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return next(r for r in history if "loss" in r)


@pytest.mark.parametrize("micro,accum", [(1, 4), (2, 2)])
def test_accumulation_gives_the_global_batch_loss_and_gradient(config, micro, accum):
    cfg, tmp = config
    whole = _first_step(cfg, tmp / "whole")
    split = _first_step(cfg, tmp / "split", "--set", f"training.per_device_train_batch_size={micro}",
                        "--set", f"training.gradient_accumulation_steps={accum}")
    for key in ("loss", "grad_norm", "loss_text", "loss_latent", "loss_sync"):
        assert split[key] == pytest.approx(whole[key], rel=1e-4), key
