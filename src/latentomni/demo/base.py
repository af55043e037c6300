"""The demo's tiny pretrained base model: our stand-in for Qwen2.5-Omni-7B.

The paper post-trains a model that already perceives audio and video. Learning perception from scratch does
not fit in a CPU demo, so ``latentomni pretrain-base`` (``make base``) trains a ~1.2M-parameter Qwen2.5-Omni
thinker on dense perception targets of the synthetic world -- per-segment captions of what is seen and heard
and when, single-modality probes, counting, option letter <-> text copying -- and writes a safetensors
checkpoint of a few MB, with its recipe, seed and hash, that ``make demo`` starts every variant from.

Perception quality is measured on held-out clips: the model captions each clip segment by segment and each
line is compared with the ground truth, separately for the visual phrase (colour, shape, count, motion) and
the audio phrase (the sound).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import torch

from ..data.collate import MediaSettings
from ..data.world import generate_world
from ..data.world.scene import audio_phrase, visual_phrase
from ..inference import prompt_sample
from ..model.generate import GenerationConfig, generate
from ..model.tiny import build_tiny_base

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny-base"
CAPTION_PROMPT = "Describe the clip segment by segment, with times."
DEMO_MEDIA = MediaSettings(fps=2.0, max_frames=32, max_pixels=56 * 56, use_audio_in_video=True)

RECIPE = {
    "seed": 0,
    "world": {"n_train_clips": 800, "n_test_clips": 60, "seed": 1000, "probes_per_clip": 6},
    "model": {"hidden": 128, "layers": 4, "heads": 4, "vision_hidden": 64, "audio_hidden": 64},
    "training": {"max_steps": 4000, "per_device_train_batch_size": 8, "learning_rate": 1.0e-3,
                 "warmup_ratio": 0.02, "lr_scheduler_type": "cosine", "weight_decay": 0.0,
                 # from a random init every tower must learn; the post-training recipe freezes vision later
                 "freeze_vision": False, "freeze_audio": False},
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pretrain_base(out_dir: Path = ASSET_DIR, work_dir: Path = Path("runs/base"), max_steps: int | None = None,
                  max_minutes: float | None = 60.0, workers: int = 2) -> dict:
    """Train the base model from a random init and write it (with recipe.json) to ``out_dir``."""
    from ..train.config import TrainConfig
    from ..train.trainer import train

    recipe = json.loads(json.dumps(RECIPE))
    if max_steps is not None:
        recipe["training"]["max_steps"] = max_steps
    work_dir = Path(work_dir)
    t0 = time.time()
    w = recipe["world"]
    world = generate_world(work_dir / "world", n_train_clips=w["n_train_clips"], n_test_clips=w["n_test_clips"],
                           seed=w["seed"], workers=workers, perception_probes_per_clip=w["probes_per_clip"])
    init = work_dir / "init"
    build_tiny_base(init, seed=recipe["seed"], **recipe["model"])
    t = recipe["training"]
    cfg = TrainConfig.model_validate({
        "model": {"base": str(init), "dtype": "float32"},
        "latent": {"latent_mode": False},
        "data": {"train_file": str(world.path("perception")), "variant": "text_cot", "media": DEMO_MEDIA.model_dump(),
                 "media_cache_size": 4096},
        "training": {**t, "output_dir": str(work_dir / "train"), "logging_steps": 50, "save_steps": 500,
                     "save_total_limit": 1, "report_to": ["tensorboard"], "seed": recipe["seed"],
                     "max_minutes": max_minutes},
    })
    metrics = train(cfg, resume=True)
    from ..model.wrapper import LatentOmniModel

    model = LatentOmniModel.from_pretrained(work_dir / "train").eval()
    quality = perception_quality(model, world.out_dir, world.path("ground_truth"))
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir)
    for extra in ("training_args.bin",):
        (out_dir / extra).unlink(missing_ok=True)
    report = {
        "recipe": recipe, "steps_trained": metrics["global_step"], "train_minutes": round((time.time() - t0) / 60, 1),
        "final_train_loss": metrics.get("train_loss"), "perception": quality,
        "parameters": sum(p.numel() for p in model.parameters()),
        "sha256": {"model.safetensors": sha256(out_dir / "model.safetensors")},
        "command": "latentomni pretrain-base  (make base)", "torch": torch.__version__,
    }
    (out_dir / "recipe.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


_LINE = re.compile(r"Segment\s+(\d+)\s*\([^)]*\)\s*:\s*(.*?)\s*;\s*(.*?)\s*\.?\s*$")


def perception_quality(model, world_dir: Path, ground_truth: Path, split: str = "test", batch_size: int = 16,
                       limit: int | None = None) -> dict:
    """Per-segment caption accuracy per modality on held-out clips (exact visual / audio phrases)."""
    from ..data.collate import SampleEncoder, collate

    clips = [json.loads(line) for line in Path(ground_truth).read_text().splitlines()]
    clips = [c for c in clips if c.get("split") == split][:limit]
    c = model.config
    enc = SampleEncoder(model.processor, model.latent, model.token_ids, DEMO_MEDIA,
                        position_id_per_seconds=c.position_id_per_seconds, seconds_per_chunk=c.seconds_per_chunk)
    gen = GenerationConfig(max_new_tokens=96)
    visual = audio = both = total = 0
    per_attr = {k: 0 for k in ("colour", "shape", "count", "sound")}
    with torch.no_grad():
        for i in range(0, len(clips), batch_size):
            group = clips[i:i + batch_size]
            encoded = [enc.encode(prompt_sample(CAPTION_PROMPT, str(Path(world_dir) / g["media"]), sample_id=g["id"]),
                                  Path("."), for_generation=True) for g in group]
            out = generate(model, collate(encoded, model.processor.tokenizer.pad_token_id, "left"), gen)
            for g, text in zip(group, out.texts, strict=True):
                said = {int(m.group(1)): (m.group(2).strip(), m.group(3).strip())
                        for m in (_LINE.match(line.strip()) for line in text.splitlines()) if m}
                for seg in g["segments"]:
                    total += 1
                    v_true = visual_phrase(_visual(seg))
                    a_true = audio_phrase(seg["sound"])
                    v_said, a_said = said.get(seg["segment"], ("", ""))
                    visual += v_said == v_true
                    audio += a_said == a_true
                    both += (v_said == v_true) and (a_said == a_true)
                    per_attr["colour"] += seg["colour"] in v_said
                    per_attr["shape"] += seg["shape"] in v_said
                    per_attr["count"] += v_said.split(" ")[0] == v_true.split(" ")[0]
                    per_attr["sound"] += a_said == a_true
    n = max(total, 1)
    return {"segments": total, "clips": len(clips), "visual_accuracy": round(visual / n, 3),
            "audio_accuracy": round(audio / n, 3), "both_accuracy": round(both / n, 3),
            "attribute_accuracy": {k: round(v / n, 3) for k, v in per_attr.items()}}


def _visual(seg: dict):
    from ..data.world.scene import Visual

    return Visual(seg["shape"], seg["colour"], seg["count"], seg["motion"])
