"""`make bench`: performance ratios of the latent machinery, measured in one process on the tiny model.

Ratios, not absolute times, so the numbers mean the same on a laptop and in CI:

* ``train_step_ratio``  full LatentOmni step (anchors, L_text + L_latent + L_sync, backward) divided by a
  plain cross-entropy step of the unmodified thinker over the identical token sequence (target <= 1.15).
* ``train_step_ratio_rollout``  the same step with ``slot_inputs: rollout`` (each block's K states generated
  without gradient as decoding generates them, then the one gradient pass) over the same plain step.
* ``decode_ratio``      steps/s of decoding that contains a 40-latent block divided by steps/s of plain text
  decoding of equal length, both KV-cached (target >= 0.95).
* ``batch8_speedup``    latent decoding throughput at batch 8 divided by batch 1 (target >= 4).

Each timing is the median of interleaved repeats after a warm-up. Results go to ``--out`` as JSON.
``--device cuda`` runs the same measurements on a GPU (timings synchronise the device), and ``--hidden``,
``--layers``, ``--heads`` grow the text model, since at the tiny default size a GPU measures kernel-launch
overhead rather than the method. ``--backbone qwen3-omni`` measures the same ratios on the tiny Qwen3-Omni
thinker (mixture-of-experts text model with DeepStack) instead of the tiny Qwen2.5-Omni one; the latent side
and the plain side go through the same family, so the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
# The tiny base builder of each backbone family (same size keywords: hidden, layers, heads).
BACKBONES = {"qwen2.5-omni": "latentomni.testing.tiny", "qwen3-omni": "latentomni.testing.tiny_qwen3"}
TARGETS = {"train_step_ratio": ("<=", 1.15), "decode_ratio": (">=", 0.95), "batch8_speedup": (">=", 4.0),
           "synth_efficiency": (">=", 0.8), "synth_vllm_efficiency": (">=", 0.9)}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _setup(workdir: Path, device: str = "cpu", backbone: str = "qwen2.5-omni", **sizes: int):
    import importlib

    from latentomni.config import LatentConfig
    from latentomni.data.collate import SampleEncoder, batch_to, collate
    from latentomni.data.features import MediaSettings
    from latentomni.data.render import render_av, tone
    from latentomni.data.schema import parse_sample
    from latentomni.model.wrapper import LatentOmniModel

    build_tiny_base = importlib.import_module(BACKBONES[backbone]).build_tiny_base
    rng = np.random.default_rng(0)
    frames = (rng.random((16, 56, 56, 3)) * 255).astype(np.uint8)
    render_av(workdir / "clip.mp4", frames, 4, np.concatenate([tone(440 * (1 + i), 1.0, 44100) for i in range(4)]))
    build_tiny_base(workdir / "base", **sizes)
    model = LatentOmniModel.from_base(workdir / "base", LatentConfig()).to(device)
    assert model.backbone.family == backbone, f"built a {model.backbone.family} base for --backbone {backbone}"
    enc = SampleEncoder.for_model(model, MediaSettings(max_pixels=56 * 56))
    reasoning = "I listen for the high tone and look at what is on screen when it sounds. " * 3

    def sample(i: int) -> dict:
        return {"id": f"b{i}", "messages": [
            {"role": "user", "content": [{"type": "video", "video": "clip.mp4"},
                                         {"type": "text", "text": "What colour is on screen at the high tone?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": reasoning},
                {"type": "latent", "segment": 1, "start": 1.0 * (i % 2), "end": 2.0 + (i % 2)},
                {"type": "text", "text": reasoning + " \\boxed{B}"}]}], "answer": "B"}

    samples = [parse_sample(sample(i)) for i in range(8)]
    pad = model.processor.tokenizer.pad_token_id
    train = batch_to(collate([enc.encode(s, workdir) for s in samples[:4]], pad), model.device)
    prompts = collate([enc.encode(s, workdir, for_generation=True) for s in samples], pad, padding_side="left")
    return model, train, prompts


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_train(model, batch, repeats: int) -> dict:
    model.train()

    def latent_step():
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()

    def rollout_step():
        model.latent.slot_inputs = "rollout"
        try:
            latent_step()
        finally:
            model.latent.slot_inputs = "anchors"

    plain_inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw",
                                          "video_second_per_grid", "input_features", "feature_attention_mask")}
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)

    def plain_step():
        model.zero_grad(set_to_none=True)
        model.thinker.model.rope_deltas = None
        out = model.thinker(**plain_inputs, labels=labels, use_audio_in_video=True, use_cache=False)
        out.loss.backward()

    for _ in range(2):
        latent_step()
        rollout_step()
        plain_step()
    lat, roll, plain = [], [], []
    for _ in range(repeats):  # interleave so drifts in machine load hit all alike
        lat.append(_median_time(latent_step, 1))
        roll.append(_median_time(rollout_step, 1))
        plain.append(_median_time(plain_step, 1))
    t_lat, t_roll, t_plain = statistics.median(lat), statistics.median(roll), statistics.median(plain)
    return {"train_step_ratio": t_lat / t_plain, "train_step_ratio_rollout": t_roll / t_plain,
            "train_step_latent_s": t_lat, "train_step_rollout_s": t_roll, "train_step_plain_s": t_plain}


def bench_decode(model, prompts, repeats: int, steps: int = 48) -> dict:
    from latentomni.data.collate import batch_to
    from latentomni.model.generate import GenerationConfig, generate

    model.eval()
    k = model.latent.num_latents
    one = batch_to(_subset(prompts, [0]), model.device)
    prompts = batch_to(prompts, model.device)
    cfg = GenerationConfig(max_new_tokens=steps)

    def ban(step, logits):  # no trigger, no end of turn: every run decodes exactly `steps` positions
        logits[:, model.token_ids.start] = float("-inf")
        eos = model.processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
        logits[:, eos] = float("-inf")
        return logits

    def latent_force_noeos(step, logits):  # the trigger at step 2, then K latents, then text
        logits = ban(step, logits)
        if step == 2:
            logits[:, model.token_ids.start] = 1e4
        return logits

    def run(batch, proc):
        return generate(model, batch, cfg, logits_processor=proc)

    check = run(one, latent_force_noeos)
    assert check.num_blocks == [1] and check.sequences.shape[1] == steps, "benchmark must decode one full block"
    for _ in range(2):
        run(one, latent_force_noeos)
        run(one, ban)
    lat, txt, b8 = [], [], []
    for _ in range(repeats):
        lat.append(_median_time(lambda: run(one, latent_force_noeos), 1))
        txt.append(_median_time(lambda: run(one, ban), 1))
        b8.append(_median_time(lambda: run(prompts, latent_force_noeos), 1))
    t_lat, t_txt, t_b8 = statistics.median(lat), statistics.median(txt), statistics.median(b8)
    n8 = prompts["input_ids"].shape[0]
    return {
        "decode_ratio": (steps / t_lat) / (steps / t_txt),
        "decode_latent_steps_per_s": steps / t_lat,
        "decode_text_steps_per_s": steps / t_txt,
        "batch8_speedup": (n8 * steps / t_b8) / (steps / t_lat),
        "latent_block_size": k,
        "decode_steps": steps,
    }


def _subset(batch: dict, rows: list[int]) -> dict:
    """Rows of a collated prompt batch, with their media, trimmed of columns that are padding for all."""
    out = dict(batch)
    idx = torch.tensor(rows)
    for key in ("input_ids", "attention_mask", "labels", "slot_index"):
        if key in out:
            out[key] = out[key][idx]
    keep = out["attention_mask"].bool().any(0)
    for key in ("input_ids", "attention_mask", "labels", "slot_index"):
        if key in out:
            out[key] = out[key][:, keep]
    vids = [i for i, o in enumerate(batch["video_owner"].tolist()) if o in rows]
    grid = batch["video_grid_thw"]
    sizes = grid.prod(-1).tolist()
    starts = np.cumsum([0, *sizes])
    out["pixel_values_videos"] = torch.cat([batch["pixel_values_videos"][starts[i]:starts[i + 1]] for i in vids])
    out["video_grid_thw"] = grid[vids]
    out["video_second_per_grid"] = batch["video_second_per_grid"][vids]
    out["video_owner"] = torch.arange(len(vids))
    auds = [i for i, o in enumerate(batch["audio_owner"].tolist()) if o in rows]
    out["input_features"] = batch["input_features"][auds]
    out["feature_attention_mask"] = batch["feature_attention_mask"][auds]
    out["audio_owner"] = torch.arange(len(auds))
    out["sample_ids"] = [batch["sample_ids"][i] for i in rows]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None,
                    help="results JSON (default runs/bench/results.json, or results_<backbone>.json for a "
                         "backbone other than qwen2.5-omni)")
    ap.add_argument("--backbone", choices=sorted(BACKBONES), default="qwen2.5-omni",
                    help="model family of the tiny benchmarked thinker")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-synth", action="store_true", help="skip the data-pipeline benchmarks")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, or auto (cuda when available)")
    ap.add_argument("--hidden", type=int, default=128, help="text hidden size of the benchmarked model")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    args = ap.parse_args(argv)
    if args.out is None:
        name = "results.json" if args.backbone == "qwen2.5-omni" else f"results_{args.backbone}.json"
        args.out = str(ROOT / "runs" / "bench" / name)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                                 "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                                 "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                                 "model": {"hidden": args.hidden, "layers": args.layers, "heads": args.heads}}}
    if args.backbone != "qwen2.5-omni":  # the default run's results.json keeps its keys
        results["machine"]["model"]["backbone"] = args.backbone
    with tempfile.TemporaryDirectory() as tmp:
        model, train, prompts = _setup(Path(tmp), device, args.backbone, hidden=args.hidden, layers=args.layers,
                                       heads=args.heads)
        results.update(bench_train(model, train, args.repeats))
        results.update(bench_decode(model, prompts, args.repeats))
    if not args.skip_synth:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        try:
            import synth_bench
        except ImportError:
            synth_bench = None
        if synth_bench is not None:
            for name in ("synth_efficiency", "synth_vllm_efficiency"):
                fn = getattr(synth_bench, name, None)
                if fn is not None:
                    try:
                        results.update(fn())
                    except Exception as e:  # a missing server is reported, not fatal
                        results[f"{name}_error"] = f"{type(e).__name__}: {e}"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"{'metric':<24}{'value':>10}   target")
    for key, value in results.items():
        if isinstance(value, float):
            op, target = TARGETS.get(key, ("", None))
            verdict = ""
            if target is not None:
                ok = value <= target if op == "<=" else value >= target
                verdict = f"{op} {target}  {'met' if ok else 'NOT met'}"
            print(f"{key:<24}{value:>10.3f}   {verdict}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
