"""slot_inputs scheduled: the trainer ramps the probability of own states at the slots over the run."""

import json

import pytest
from torch import nn
from transformers import TrainerControl, TrainerState

from latentomni.train.trainer import SlotSchedule
from lo_testing import make_sample


@pytest.mark.parametrize("step, max_steps, ramp, p", [
    (0, 10, 1.0, 0.0), (5, 10, 1.0, 0.5), (10, 10, 1.0, 1.0), (2, 10, 0.5, 0.4), (7, 10, 0.5, 1.0), (0, 1, 1.0, 0.0),
])
def test_probability_ramps_linearly_then_stays_at_one(step, max_steps, ramp, p):
    assert SlotSchedule.probability(step, max_steps, ramp) == pytest.approx(p)


def test_callback_sets_the_probability_on_a_wrapped_model(model):
    wrapped = nn.ModuleDict({"module": model})  # DDP / DeepSpeed / FSDP hold the model as a submodule
    state = TrainerState(global_step=3, max_steps=4)
    SlotSchedule(0.5).on_step_begin(None, state, TrainerControl(), model=wrapped)
    assert model.slot_own_probability == 1.0
    state.global_step = 1
    SlotSchedule(1.0).on_step_begin(None, state, TrainerControl(), model=wrapped)
    assert model.slot_own_probability == 0.25


def test_scheduled_training_logs_the_ramp(tmp_path, tiny_base_dir, clip_dir):
    from latentomni.cli import main

    rows = [make_sample(f"s{i}", video=str(clip_dir / ("clip4.mp4" if i % 2 else "clip3.mp4")),
                        blocks=((0.0, 1.5), (1.5, 3.0))[: 1 + i % 2]) for i in range(2)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"""
model: {{base: {tiny_base_dir}}}
latent: {{num_latents: 8, num_visual: 6, num_audio: 2, slot_inputs: scheduled, slot_schedule_ramp: 0.5}}
data: {{train_file: {data}, media: {{max_pixels: 3136}}, cache_encoded: true, allow_absolute_media: true}}
training: {{output_dir: {tmp_path / 'out'}, max_steps: 4, per_device_train_batch_size: 2, learning_rate: 1.0e-3,
           logging_steps: 1, save_steps: 100, report_to: [], disable_tqdm: true, seed: 0}}
""")
    assert main(["train", "--config", str(cfg)]) == 0
    logs = [r for r in json.loads((tmp_path / "out" / "trainer_state.json").read_text())["log_history"] if "loss" in r]
    assert [r["slot_own_probability"] for r in logs] == [0.0, 0.5, 1.0, 1.0]
    assert all(r["loss_latent"] > 0 for r in logs)
