"""End-to-end check of the GPU code path on the tiny model (CI has no GPU; run this where one is).

1. Train the ``latent`` variant for a few steps on a small rendered world through ``latentomni.train`` (the
   HF Trainer puts the model on the GPU and turns bf16 on where the card has it); every logged loss term
   must be finite.
2. Evaluate the trained model on held-out questions with batched, latent-aware generation on the GPU.
3. Parity: the teacher-forced forward in float32 gives the same loss terms on the CPU and the GPU, and greedy
   decoding with a forced latent block gives the same tokens on both.

Prints a JSON report (and writes it to ``--out``); exits non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/device_check.json")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to debug this script")
    args = ap.parse_args(argv)
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 2
    from latentomni.data.collate import SampleEncoder, batch_to, collate
    from latentomni.data.features import MediaSettings
    from latentomni.data.schema import load_samples
    from latentomni.data.world import generate_world
    from latentomni.eval.samples import evaluate_world, summarize
    from latentomni.inference.predictor import LatentOmniPredictor
    from latentomni.model.generate import GenerationConfig, generate
    from latentomni.model.wrapper import LatentOmniModel
    from latentomni.testing.tiny import build_tiny_base
    from latentomni.train.config import TrainConfig
    from latentomni.train.trainer import train

    report: dict = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "torch": torch.__version__,
                    "bf16": dev == "cuda" and torch.cuda.is_bf16_supported()}
    ok = True
    media = MediaSettings(fps=2.0, max_frames=32, max_pixels=56 * 56)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = generate_world(tmp / "world", n_train_clips=24, n_test_clips=6, seed=0, workers=1)
        build_tiny_base(tmp / "base")
        cfg = TrainConfig.model_validate({
            "model": {"base": str(tmp / "base")},
            "latent": {"latent_mode": True},
            "data": {"train_file": str(world.path("train")), "variant": "latent", "media": media.model_dump()},
            "training": {"output_dir": str(tmp / "run"), "max_steps": args.steps, "per_device_train_batch_size": 8,
                         "learning_rate": 5e-4, "logging_steps": 5, "save_steps": 10**6, "report_to": [],
                         "freeze_vision": True}})
        t0 = time.time()
        metrics = train(cfg)
        history = json.loads((tmp / "run" / "trainer_state.json").read_text())["log_history"]
        report["train"] = {"steps": metrics["global_step"], "seconds": round(time.time() - t0, 1),
                           "history": history[-3:]}
        logged = [v for row in history for k, v in row.items() if k.startswith(("loss", "train_loss"))]
        finite = bool(logged) and all(math.isfinite(v) for v in logged)
        report["train"]["losses_finite"] = finite
        ok &= finite

        model = LatentOmniModel.from_pretrained(tmp / "run").to(dev).eval()
        test = load_samples(world.path("test_seen"))[:32]
        predictor = LatentOmniPredictor.from_model(model, "run", media, GenerationConfig(max_new_tokens=96))
        recs = evaluate_world(predictor, test, world.out_dir, tmp / "eval", 16, progress=False)
        report["eval"] = summarize(recs, 0.25)

        # parity, float32: CPU vs GPU on one batch
        cpu = LatentOmniModel.from_pretrained(tmp / "run").eval()
        enc = SampleEncoder.for_model(cpu, media)
        samples = load_samples(world.path("train"))[:4]
        batch = collate([enc.encode(s, world.out_dir) for s in samples], cpu.processor.tokenizer.pad_token_id)
        gpu_batch = batch_to(batch, dev)
        with torch.no_grad():
            a, b = cpu(**batch), model(**gpu_batch)
        terms = ("loss", "loss_text", "loss_latent", "loss_sync")
        diffs = {t: abs(float(getattr(a, t)) - float(getattr(b, t))) for t in terms}
        report["forward_parity_abs_diff"] = diffs
        ok &= all(d < 1e-3 * max(1.0, abs(float(getattr(a, t)))) for t, d in diffs.items())

        prompts = collate([enc.encode(s, world.out_dir, for_generation=True) for s in samples],
                          cpu.processor.tokenizer.pad_token_id, padding_side="left")

        def force(step, logits):
            if step == 1:
                logits[:, cpu.token_ids.start] = 1e4
            return logits

        gcfg = GenerationConfig(max_new_tokens=64)
        out_cpu = generate(cpu, prompts, gcfg, logits_processor=force)
        out_gpu = generate(model, batch_to(prompts, dev), gcfg, logits_processor=force)
        same = [x == y for x, y in zip(out_cpu.texts, out_gpu.texts, strict=True)]
        report["generation_parity"] = {"same_text": sum(same), "of": len(same), "blocks_cpu": out_cpu.num_blocks,
                                       "blocks_gpu": out_gpu.num_blocks}
        ok &= out_cpu.num_blocks == out_gpu.num_blocks and all(n >= 1 for n in out_gpu.num_blocks)
    report["ok"] = bool(ok)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
