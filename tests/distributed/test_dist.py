"""Real multi-process launches on the CPU (gloo, two processes), as a user starts them: ``accelerate launch``
with the configs in ``configs/accelerate/`` around ``latentomni train`` / ``latentomni eval``.

For each engine (DDP, DeepSpeed ZeRO-2, ZeRO-3, FSDP) the first steps must optimise the loss of the global
batch exactly as one process does: same loss, grad-norm and per-term logs with the batch split over two
processes, and again with half the per-device batch and two accumulation steps. The checkpoint must be
full, load with both loaders and decode like the single-process one; a resumed run must continue the
interrupted one. ``eval`` sharded over two processes must give the single-process predictions.

Run with ``make test-dist`` (about 5 minutes on two cores).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lo_testing import encode_batch, make_sample, render_clip

pytestmark = pytest.mark.dist

REPO = Path(__file__).resolve().parents[2]
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
REL = 1e-4  # the bound on |multi - single| / |single|
TAILS = ["It is blue.", "It is blue, because the high tone plays while the blue square is on screen.", "Blue.",
         "The square that is on screen while the tone plays is blue, so the answer is blue."]
# engine -> (accelerate config, environment); DeepSpeed must not see ACCELERATE_USE_CPU (accelerate then turns it
# off), DDP and FSDP need it to build a CPU (gloo) process group.
ENGINES = {
    "ddp": ("ddp.yaml", {"ACCELERATE_USE_CPU": "true"}),
    "zero2": ("zero2.yaml", {}),
    "zero3": ("zero3.yaml", {}),
    "fsdp": ("fsdp.yaml", {"ACCELERATE_USE_CPU": "true"}),
}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "DS_"))}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(extra or {})}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args: list[str], engine: str | None, log: Path) -> subprocess.CompletedProcess:
    """``latentomni <args>`` in one plain process (engine None) or under ``accelerate launch`` on two."""
    if engine is None:
        cmd, env = [sys.executable, "-m", "latentomni.cli", *args], _env()
    else:
        config, extra = ENGINES[engine]
        cmd = [ACCELERATE, "launch", "--config_file", str(REPO / "configs" / "accelerate" / config),
               "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(_free_port()),
               "-m", "latentomni.cli", *args]
        env = _env(extra)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log.write_text(proc.stdout + proc.stderr)
    return proc


def _train(world: dict, out: Path, engine: str | None, *sets: str) -> subprocess.CompletedProcess:
    args = ["train", "--config", str(world["config"]), "--set", f"training.output_dir={out}", *sets]
    return _launch(args, engine, out.with_suffix(".log"))


def _steps(out: Path) -> list[dict]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [r for r in history if "loss" in r]


def _close(a: float, b: float, rel: float = REL) -> bool:
    return abs(a - b) <= rel * abs(b)


def _assert_same_steps(got: list[dict], want: list[dict], n: int, label: str) -> None:
    assert len(got) >= n and len(want) >= n, (label, got, want)
    for g, w in zip(got[:n], want[:n], strict=True):
        for key in ("loss", "grad_norm", "loss_text", "loss_latent", "loss_sync"):
            assert _close(g[key], w[key]), f"{label}: step {w['step']} {key} {g[key]} vs single process {w[key]}"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """The tiny base, two rendered clips and four samples whose replies differ in length (so a
    per-process mean would weight them differently from the global batch)."""
    from latentomni.testing.tiny import build_tiny_base

    root = tmp_path_factory.mktemp("dist")
    build_tiny_base(root / "base", seed=0)
    render_clip(root / "clip4.mp4", seconds=4.0)
    render_clip(root / "clip3.mp4", seconds=3.0)
    rows = [make_sample(f"s{i}", video="clip4.mp4" if i % 2 else "clip3.mp4",
                        blocks=((0.0, 1.5), (1.5, 3.0))[: 1 + i % 2], tail=TAILS[i]) for i in range(4)]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = root / "train.yaml"
    config.write_text(f"""
model: {{base: {root / 'base'}}}
latent: {{num_latents: 8, num_visual: 6, num_audio: 2}}
data: {{train_file: {root / 'train.jsonl'}, media: {{max_pixels: 3136}}}}
training: {{output_dir: {root / 'unused'}, max_steps: 2, per_device_train_batch_size: 4, learning_rate: 1.0e-3,
           warmup_ratio: 0, logging_steps: 1, save_steps: 1, report_to: [], disable_tqdm: true, seed: 0}}
""")
    return {"root": root, "config": config, "samples": rows}


@pytest.fixture(scope="module")
def single(world) -> Path:
    """The reference: one plain process, the whole global batch (4) in one micro-batch."""
    out = world["root"] / "single"
    proc = _train(world, out, None)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _decode(ckpt: Path, world: dict) -> tuple[list, list]:
    """Greedy output of a checkpoint: the latent decoding loop with a block forced at the first step
    (LatentOmniModel.from_pretrained), and Hugging Face ``generate`` on the plain thinker class."""
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    from latentomni.model.generate import GenerationConfig, generate
    from latentomni.model.wrapper import LatentOmniModel

    model = LatentOmniModel.from_pretrained(ckpt).eval()
    batch = encode_batch(model, world["samples"][:2], world["root"], for_generation=True)

    def force_block(step, logits):
        if step == 0:
            logits[:, model.token_ids.start] = 1e4
        return logits

    with torch.no_grad():
        ours = generate(model, batch, GenerationConfig(max_new_tokens=12), logits_processor=force_block)
        thinker = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(str(ckpt)).eval()
        hf = thinker.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            pixel_values_videos=batch["pixel_values_videos"], video_grid_thw=batch["video_grid_thw"],
            video_second_per_grid=batch["video_second_per_grid"], input_features=batch["input_features"],
            feature_attention_mask=batch["feature_attention_mask"], use_audio_in_video=True,
            do_sample=False, max_new_tokens=12)
    assert ours.num_blocks == [1, 1]
    return ours.sequences.tolist(), hf[:, batch["input_ids"].shape[1]:].tolist()


def _assert_full_checkpoint(ckpt: Path, reference: Path, world: dict) -> None:
    """Every tensor of the single-process checkpoint is there with its shape (a ZeRO-3/FSDP shard would be
    empty), the values agree to Adam's sensitivity after two steps, and greedy decoding is identical."""
    from safetensors.torch import load_file

    got, want = load_file(str(ckpt / "model.safetensors")), load_file(str(reference / "model.safetensors"))
    assert got.keys() == want.keys()
    for key, w in want.items():
        assert got[key].shape == w.shape, f"{ckpt}: {key} has shape {tuple(got[key].shape)}"
        assert torch.allclose(got[key], w, rtol=1e-3, atol=1e-3 * float(w.abs().max())), key
    temp = load_file(str(ckpt / "latentomni_params.safetensors"))["log_temperature"]
    assert torch.allclose(temp, load_file(str(reference / "latentomni_params.safetensors"))["log_temperature"])
    assert _decode(ckpt, world) == _decode(reference, world)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_engine_matches_one_process_and_round_trips(engine, world, single, tmp_path):
    # 1. The global batch of 4 split over two processes.
    split = tmp_path / "split"
    proc = _train(world, split, engine, "--set", "training.per_device_train_batch_size=2")
    if engine == "fsdp":
        # accelerate enables FSDP only on accelerator process groups; on a CPU it would quietly run DDP.
        # The trainer refuses with one clear line instead; the engine itself is checked on GPUs only.
        assert proc.returncode != 0
        assert "the launch asks for FSDP but accelerate" in proc.stderr, proc.stderr[-3000:]
        pytest.skip("FSDP cannot run on a CPU process group: accelerate sets up MULTI_CPU (DDP) instead of FSDP; "
                    "the trainer refuses to start (asserted above)")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if engine != "ddp":
        assert (split / "checkpoint-1" / "latest").is_file(), f"{engine}: no DeepSpeed checkpoint was written"
    _assert_same_steps(_steps(split), _steps(single), 2, f"{engine}, 2 processes x 2")

    # 2. Half the per-device batch, two accumulation steps: the same global batch again.
    accum = tmp_path / "accum"
    proc = _train(world, accum, engine, "--set", "training.per_device_train_batch_size=1",
                  "--set", "training.gradient_accumulation_steps=2", "--set", "training.max_steps=1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _assert_same_steps(_steps(accum), _steps(single), 1, f"{engine}, 2 processes x 1 x 2 accumulation steps")

    # 3. The written checkpoint is full, loads with both loaders and decodes as the single-process one.
    _assert_full_checkpoint(split, single, world)

    # 4. Resume from the first checkpoint: step 2 is the uninterrupted run's step 2.
    proc = _train(world, split, engine, "--set", "training.per_device_train_batch_size=2",
                  "--resume", str(split / "checkpoint-1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((split / "train_results.json").read_text())
    assert results["resumed_at_step"] == 1 and results["global_step"] == 2
    _assert_same_steps(_steps(split)[1:], _steps(single)[1:], 1, f"{engine}, resumed at step 1")


def test_rollout_training_under_zero3_matches_one_process(world, tmp_path):
    """``slot_inputs: rollout`` calls the language model many times inside one forward (the KV-cached
    rollout, then the gradient pass); under ZeRO-3 each call gathers its parameters at the module hooks, and
    the two steps must still be the single process's (same loss, grad-norm, terms)."""
    rollout = ("--set", "latent.slot_inputs=rollout", "--set", "latent.attention_flow=through_latents")
    one = _train(world, tmp_path / "one", None, *rollout, "--set", "training.save_steps=100")
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    two = _train(world, tmp_path / "two", "zero3", *rollout, "--set", "training.save_steps=100",
                 "--set", "training.per_device_train_batch_size=2")
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    _assert_same_steps(_steps(tmp_path / "two"), _steps(tmp_path / "one"), 2, "rollout, zero3, 2 processes x 2")


def test_sharded_eval_equals_one_process(world, single, tmp_path):
    """``latentomni eval`` over two processes: the same rows as one process, no duplicate, none missing,
    and the same results.json."""
    videos = tmp_path / "videos"
    for i, seconds in enumerate((4.0, 3.0)):
        render_clip(videos / f"video_{i}.mp4", seconds=seconds)
    questions = [{"video_id": f"video_{i % 2}", "question": f"Which colour is on screen at second {i}?",
                  "options": ["A. red", "B. blue", "C. green", "D. yellow"], "correct_option": "ABCD"[i % 4],
                  "question_type": "Temporal", "audio_type": "Sound", "difficulty": "easy",
                  "video_category": "Film"} for i in range(5)]
    (tmp_path / "data.json").write_text(json.dumps(questions))
    runs = {}
    for name, engine in (("one", None), ("two", "ddp")):
        out = tmp_path / name
        args = ["eval", "--model", str(single), "--benchmark", "lvomnibench", "--annotations",
                str(tmp_path / "data.json"), "--media-root", str(videos), "--out", str(out), "--no-progress",
                "--set", "decoding.max_new_tokens=24", "--set", "media.max_pixels=3136"]
        proc = _launch(args, engine, tmp_path / f"{name}.log")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]
        runs[name] = (rows, json.loads((out / "results.json").read_text()))
        assert not list(out.glob("predictions.rank*.jsonl")), "per-process files were merged and removed"
    (one_rows, one_results), (two_rows, two_results) = runs["one"], runs["two"]
    qids = [r["qid"] for r in two_rows]
    assert len(qids) == len(set(qids)) == len(questions), f"duplicates or gaps: {qids}"
    assert sorted(two_rows, key=lambda r: r["qid"]) == sorted(one_rows, key=lambda r: r["qid"])
    assert two_results == one_results


# -- Qwen3-Omni: the tiny recipe under DDP ------------------------------------------------------------------
QWEN3_CONFIG = REPO / "configs" / "qwen3-omni-tiny" / "latent.yaml"


def _train_qwen3(world: dict, out: Path, engine: str | None, *sets: str) -> subprocess.CompletedProcess:
    """``configs/qwen3-omni-tiny/latent.yaml`` (LoRA on attention, router loss, frozen towers) on the world's
    samples and a tiny Qwen3-Omni base. LoRA dropout is off (its masks depend on how a batch is split) and so
    is warmup (so the second step runs on updated weights)."""
    base = [f"model.base={world['qwen3_base']}", f"data.train_file={world['root'] / 'train.jsonl'}",
            f"training.output_dir={out}", "training.max_steps=2",
            "training.save_steps=100", "training.warmup_ratio=0", "training.lora.dropout=0", "training.seed=0"]
    args = ["train", "--config", str(QWEN3_CONFIG), *(a for s in (*base, *sets) for a in ("--set", s))]
    return _launch(args, engine, out.with_suffix(".log"))


def test_qwen3_ddp_matches_one_process(world, tmp_path):
    """The tiny Qwen3-Omni recipe (MoE text model with DeepStack, LoRA, the router loss) on two processes with
    DDP over gloo: the global batch of 4 split 2 + 2 gives one process's steps.

    Against one process taking the 4 in one micro-batch, loss, grad-norm and every term of Eq. 7 agree. The
    router's load-balancing loss is not additive over samples (it multiplies each expert's token share by its
    mean router probability) and the trainer weights each micro-batch's by its share of the text tokens, so
    loss_router itself differs slightly (here ~3e-4 relative at step 2; times lambda_router 0.001 it is far
    below the bound in the loss); against one process taking the same two micro-batches of 2 by gradient
    accumulation, everything agrees, loss_router included."""
    from latentomni.testing.tiny_qwen3 import build_tiny_base

    world["qwen3_base"] = world["root"] / "qwen3_base"
    if not world["qwen3_base"].is_dir():
        build_tiny_base(world["qwen3_base"], seed=0)
    runs = {"one_x4": (None, "training.per_device_train_batch_size=4", "training.gradient_accumulation_steps=1"),
            "one_2x2": (None, "training.per_device_train_batch_size=2", "training.gradient_accumulation_steps=2"),
            "ddp_2x2": ("ddp", "training.per_device_train_batch_size=2", "training.gradient_accumulation_steps=1")}
    steps = {}
    for name, (engine, *sets) in runs.items():
        proc = _train_qwen3(world, tmp_path / name, engine, *sets)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        steps[name] = _steps(tmp_path / name)
        assert len(steps[name]) == 2 and all(r["loss_router"] > 0 for r in steps[name]), (name, steps[name])
    ddp, one_x4, one_2x2 = steps["ddp_2x2"], steps["one_x4"], steps["one_2x2"]
    _assert_same_steps(ddp, one_x4, 2, "qwen3, ddp 2 processes x 2 vs one process x 4")
    for g, w in zip(ddp, one_2x2, strict=True):
        for key in ("loss", "grad_norm", "loss_text", "loss_latent", "loss_sync", "loss_router"):
            assert _close(g[key], w[key]), f"step {w['step']} {key}: {g[key]} vs one process 2 x 2 {w[key]}"


def test_qwen3_expert_lora_under_zero3_matches_one_process_and_saves_merged_experts(world, tmp_path):
    """LoRA on the fused expert parameters (``training.lora.target_parameters``, as
    configs/qwen3-omni-30b-a3b/latent_expert_lora.yaml) with ZeRO-3 sharding them over two processes: the same
    steps as one process taking the same two micro-batches by accumulation (router loss included), and a
    checkpoint whose expert weights are whole, folded, and equal to the single process's."""
    from safetensors.torch import load_file

    from latentomni.testing.tiny_qwen3 import build_tiny_base

    world["qwen3_base"] = world["root"] / "qwen3_base"
    if not world["qwen3_base"].is_dir():
        build_tiny_base(world["qwen3_base"], seed=0)
    experts = "training.lora.target_parameters=[mlp.experts.gate_up_proj, mlp.experts.down_proj]"
    one = _train_qwen3(world, tmp_path / "one", None, experts, "training.per_device_train_batch_size=2",
                       "training.gradient_accumulation_steps=2")
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    two = _train_qwen3(world, tmp_path / "two", "zero3", experts, "training.per_device_train_batch_size=2")
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    got, want = _steps(tmp_path / "two"), _steps(tmp_path / "one")
    _assert_same_steps(got, want, 2, "qwen3 expert LoRA, zero3 2 processes x 2 vs one process 2 x 2")
    for g, w in zip(got, want, strict=True):
        assert _close(g["loss_router"], w["loss_router"]), (g, w)
    base = load_file(str(world["qwen3_base"] / "model.safetensors"))
    mine, theirs = load_file(str(tmp_path / "two" / "model.safetensors")), load_file(str(tmp_path / "one" /
                                                                                          "model.safetensors"))
    assert mine.keys() == theirs.keys() and not any("lora" in k or "base_layer" in k for k in mine)
    # On disk transformers writes the fused experts in the released per-expert layout (experts.N.*_proj).
    fused = [k for k in mine if ".mlp.experts." in k]
    assert fused and fused == [k for k in base if ".mlp.experts." in k], "every expert weight is in the checkpoint"
    changed = {k.split(".mlp.")[0] for k in fused if not torch.equal(mine[k], base[k])}
    # An expert no token was routed to in two steps gets no gradient and keeps its weights; every layer has some.
    assert changed == {k.split(".mlp.")[0] for k in fused}, "the trained expert adapters are folded in, every layer"
    for key in fused:
        assert mine[key].shape == base[key].shape, f"{key}: a shard, not the whole tensor"
        w = theirs[key]
        assert torch.allclose(mine[key], w, rtol=1e-3, atol=1e-3 * float(w.abs().max())), key
