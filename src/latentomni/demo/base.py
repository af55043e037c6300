"""The demo's tiny pretrained base model: our stand-in for Qwen2.5-Omni-7B.

The paper post-trains a model that already perceives audio and video. Learning perception from scratch does
not fit in a CPU demo, so ``latentomni pretrain-base`` (``make base``) trains a ~1.2M-parameter Qwen2.5-Omni
thinker in three stages, as the real model was built: stage 0 pretrains its vision and audio encoders on
per-time-step attribute labels (:mod:`.encoders`); then, with the vision tower frozen, the LLM (and the
audio tower) learns to read them -- stage 1 from questions about the start and the end of a clip, stage 2
from dense perception targets of the synthetic world (per-segment captions of what is seen and heard and
when, single-modality probes, counting, option letter <-> text copying) with stage 1's data kept in the mix.
Experiments add stages after these through :class:`ExtraStage` (``experiments/grounding`` grounds one modality in
the other with dense retrieval and binding targets; it is not in the committed base).
It writes a safetensors checkpoint of a few MB, with its recipe, seed and hash, that ``make demo`` starts
every variant from.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.collate import SampleEncoder, collate
from ..data.features import MediaSettings
from ..data.questions import prompt_sample
from ..data.schema import write_samples
from ..data.world import generate_world
from ..data.world.generate import media_path
from ..data.world.perception import FIRST_LAST_QUESTIONS, first_last_answer, first_last_samples
from ..data.world.scene import audio_phrase, clip_from_record, visual_phrase
from ..model.generate import GenerationConfig, generate
from ..testing.tiny import build_tiny_base
from .encoders import pretrain_encoders

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny-base"
CAPTION_PROMPT = "Describe the clip segment by segment, with times."
DEMO_MEDIA = MediaSettings(fps=2.0, max_frames=32, max_pixels=56 * 56, use_audio_in_video=True)

RECIPE = {
    "seed": 0,
    "world": {"n_train_clips": 800, "n_test_clips": 60, "seed": 1000, "probes_per_clip": 6},
    "model": {"hidden": 128, "layers": 4, "heads": 4, "vision_hidden": 64, "audio_hidden": 64},
    # stage 0: the encoders learn from per-time-step attribute labels (see demo/encoders.py for why)
    "encoders": {"steps": 400, "learning_rate": 2.0e-3, "batch_size": 16, "max_clips": 400},
    # stages 1-2 train the LLM (and the audio tower) with the vision tower frozen: the language-model loss
    # alone collapses it (measured; see demo/encoders.py). Stage 1 asks only what is seen and heard at the
    # start and the end; stage 2 adds timed captions and probes, keeping stage 1's data in the mix.
    "training": {"per_device_train_batch_size": 8, "learning_rate": 1.0e-3, "warmup_ratio": 0.02,
                 "lr_scheduler_type": "cosine", "weight_decay": 0.0, "freeze_vision": True, "freeze_audio": False},
    "stages": [{"name": "first_last", "data": ["first_last"], "max_steps": 1000},
               {"name": "perception", "data": ["perception", "first_last"], "max_steps": 3000}],
}


@dataclass(frozen=True)
class ExtraStage:
    """A stage an experiment trains after the recipe's stages (``experiments/grounding``): ``run(base, work_dir,
    recipe, max_steps, workers, seed)`` trains from the ``base`` checkpoint, writes its checkpoint to
    ``work_dir / name`` and returns its report; ``recipe`` and the report are saved in recipe.json under
    ``name``, and ``command`` is the command recorded there. A hook, so that the product holds no experiment."""

    name: str
    recipe: dict
    run: Callable[[Path, Path, dict, int | None, int, int], dict]
    command: str


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pretrain_base(out_dir: Path = ASSET_DIR, work_dir: Path = Path("runs/base"), max_steps: int | None = None,
                  max_minutes: float | None = 60.0, workers: int = 2, extra: ExtraStage | None = None) -> dict:
    """Train the base model from a random init and write it (with recipe.json) to ``out_dir``; ``extra`` is an
    experiment's stage trained after the recipe's (:class:`ExtraStage`)."""
    from ..train.trainer import train

    recipe = json.loads(json.dumps(RECIPE))
    if extra is not None:
        recipe[extra.name] = json.loads(json.dumps(extra.recipe))
    if max_steps is not None:  # a total budget, shared by the stages in the recipe's proportions
        total = sum(st["max_steps"] for st in recipe["stages"])
        for st in recipe["stages"][:-1]:
            st["max_steps"] = max(1, round(max_steps * st["max_steps"] / total))
        recipe["stages"][-1]["max_steps"] = max(1, max_steps - sum(st["max_steps"] for st in recipe["stages"][:-1]))
    work_dir = Path(work_dir)
    t0 = time.time()
    w = recipe["world"]
    world = generate_world(work_dir / "world", n_train_clips=w["n_train_clips"], n_test_clips=w["n_test_clips"],
                           seed=w["seed"], workers=workers, perception_probes_per_clip=w["probes_per_clip"])
    init = work_dir / "init"
    stage0_file = init / "encoders.json"
    if stage0_file.is_file() and (init / "model.safetensors").is_file():  # resuming: stage 0 is done
        encoders = json.loads(stage0_file.read_text())
    else:
        thinker, processor = build_tiny_base(None, seed=recipe["seed"], **recipe["model"])
        e = recipe["encoders"]
        encoders = pretrain_encoders(thinker, processor, world.out_dir, world.path("ground_truth"), DEMO_MEDIA,
                                     steps=e["steps"], lr=e["learning_rate"], batch_size=e["batch_size"],
                                     max_clips=e["max_clips"], seed=recipe["seed"])
        thinker.save_pretrained(init)
        processor.save_pretrained(init)
        stage0_file.write_text(json.dumps(encoders, indent=2) + "\n")
    data = _stage_data(world)
    base, steps_trained, stage_reports = init, 0, []
    for stage in recipe["stages"]:
        left = None if max_minutes is None else max(0.5, max_minutes - (time.time() - t0) / 60)
        files = [data[name] for name in stage["data"]]
        train_file = files[0] if len(files) == 1 else _concat(files, world.out_dir / f"stage-{stage['name']}.jsonl")
        cfg = stage_config(base, train_file, work_dir / stage["name"], stage["max_steps"], recipe["training"],
                           save_steps=500, save_total_limit=1, report_to=["tensorboard"], seed=recipe["seed"],
                           max_minutes=left)
        metrics = train(cfg, resume=True)
        steps_trained += metrics["global_step"]
        stage_reports.append({"name": stage["name"], "steps": metrics["global_step"],
                              "train_loss": metrics.get("train_loss"), "samples": metrics.get("train_samples")})
        base = work_dir / stage["name"]
    extra_report = None
    if extra is not None:
        extra_report = extra.run(base, work_dir, recipe[extra.name], max_steps, workers, recipe["seed"])
        base = work_dir / extra.name
    from ..model.wrapper import LatentOmniModel

    model = LatentOmniModel.from_pretrained(base).eval()
    quality = perception_quality(model, world.out_dir, world.path("ground_truth"))
    quality["first_last"] = first_last_quality(model, world.out_dir, world.path("ground_truth"))
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir)
    for leftover in ("training_args.bin",):
        (out_dir / leftover).unlink(missing_ok=True)
    report = {
        "recipe": recipe, "steps_trained": steps_trained, "train_minutes": round((time.time() - t0) / 60, 1),
        "stages": stage_reports, "encoders": encoders, **({extra.name: extra_report} if extra is not None else {}),
        "perception": quality,
        "parameters": sum(p.numel() for p in model.parameters()),
        "sha256": {"model.safetensors": sha256(out_dir / "model.safetensors")},
        "command": extra.command if extra is not None else "latentomni pretrain-base  (make base)",
        "torch": torch.__version__,
    }
    (out_dir / "recipe.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def stage_config(base: str | Path, train_file: str | Path, output_dir: str | Path, max_steps: int,
                 training: dict, **extra):
    """The text-only (no latent) training config of a base-model stage on ``train_file``, in the demo's media
    settings; ``training`` is the recipe's optimiser block and ``extra`` adds or overrides training fields."""
    from ..train.config import TrainConfig

    return TrainConfig.model_validate({
        "model": {"base": str(base), "dtype": "float32"},
        "latent": {"latent_mode": False},
        "data": {"train_file": str(train_file), "variant": "text_cot", "media": DEMO_MEDIA.model_dump(),
                 "media_cache_size": 4096},
        "training": {**training, "max_steps": max_steps, "output_dir": str(output_dir), "logging_steps": 50,
                     **extra},
    })


def truth_records(ground_truth: str | Path, split: str | None = None) -> list[dict]:
    """The world's per-clip ground-truth records (``ground_truth.jsonl``), optionally of one split."""
    rows = [json.loads(line) for line in Path(ground_truth).read_text().splitlines()]
    return [r for r in rows if split is None or r["split"] == split]


def ask(model, world_dir: Path, prompts: list[tuple[str, str | None, str]], media: MediaSettings = DEMO_MEDIA,
        max_new_tokens: int = 40, batch_size: int = 32) -> list[str]:
    """Greedy replies to (question, media path relative to ``world_dir`` or None for text only, sample id)
    prompts, batched."""
    enc = SampleEncoder.for_model(model, media)
    gen = GenerationConfig(max_new_tokens=max_new_tokens)
    texts: list[str] = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            encoded = [enc.encode(prompt_sample(q, None if m is None else Path(world_dir) / m, sample_id=sid),
                                  Path("."), for_generation=True) for q, m, sid in prompts[i:i + batch_size]]
            texts += generate(model, collate(encoded, model.processor.tokenizer.pad_token_id, "left"), gen).texts
    return texts


# Test-time modality controls: a model that reads a modality drops to chance when that one is zeroed.
MODALITY_CONTROLS: dict[str, MediaSettings] = {
    "as is": DEMO_MEDIA,
    "video zeroed": DEMO_MEDIA.model_copy(update={"zero_video": True}),
    "audio zeroed": DEMO_MEDIA.model_copy(update={"zero_audio": True}),
}


def _stage_data(world) -> dict[str, Path]:
    """The training files the stages draw on, by name (``first_last`` is written here, from the clips)."""
    path = world.out_dir / "first_last.jsonl"
    rows = [s for c in truth_records(world.path("ground_truth"), "train")
            for s in first_last_samples(clip_from_record(c), c["media"])]
    write_samples(rows, path)
    return {"first_last": path, "perception": world.path("perception")}


def _concat(files: list[Path], out: Path) -> Path:
    if any(out.resolve() == f.resolve() for f in files):
        raise ValueError(f"{out} is one of the files to concatenate; writing it would truncate that input")
    with out.open("w", encoding="utf-8") as fh:
        for f in files:
            fh.write(f.read_text(encoding="utf-8").rstrip("\n") + "\n")
    return out


def first_last_quality(model, world_dir: Path, ground_truth: Path, split: str = "test",
                       batch_size: int = 32) -> dict:
    """Held-out accuracy on stage 1's questions, per question, with the video and with the audio zeroed too:
    a base that reads a modality drops to chance on its questions when that modality is zeroed."""
    clips = [clip_from_record(r) for r in truth_records(ground_truth, split)]
    out: dict[str, dict[str, float]] = {}
    for label, media in MODALITY_CONTROLS.items():
        for attribute, end, question in FIRST_LAST_QUESTIONS:
            texts = ask(model, world_dir, [(question, media_path(c), c.id) for c in clips], media, 8, batch_size)
            right = sum(t.strip().rstrip(".").lower() == first_last_answer(c, attribute, end)
                        for c, t in zip(clips, texts, strict=True))
            out.setdefault(f"{attribute}_{end}", {})[label] = round(right / max(len(clips), 1), 3)
    return out


_LINE = re.compile(r"Segment\s+(\d+)\s*\([^)]*\)\s*:\s*(.*?)\s*;\s*(.*?)\s*\.?\s*$")


def parse_caption(text: str) -> dict[int, tuple[str, str]]:
    """Segment number -> (visual phrase, audio phrase) of each well-formed line of a clip caption."""
    lines = (_LINE.match(line.strip()) for line in text.splitlines())
    return {int(m.group(1)): (m.group(2).strip(), m.group(3).strip()) for m in lines if m}


def caption_clips(model, world_dir: Path, records: list[dict],
                  batch_size: int = 16) -> list[dict[int, tuple[str, str]]]:
    """The model's parsed segment-by-segment caption of each ground-truth record's clip."""
    texts = ask(model, world_dir, [(CAPTION_PROMPT, r["media"], r["id"]) for r in records], DEMO_MEDIA, 96,
                batch_size)
    return [parse_caption(t) for t in texts]


def perception_quality(model, world_dir: Path, ground_truth: Path, split: str = "test", batch_size: int = 16,
                       limit: int | None = None) -> dict:
    """Per-segment caption accuracy per modality on held-out clips (exact visual / audio phrases)."""
    clips = truth_records(ground_truth, split)[:limit]
    visual = audio = both = total = 0
    per_attr = {k: 0 for k in ("colour", "shape", "count", "sound")}
    for g, said in zip(clips, caption_clips(model, world_dir, clips, batch_size), strict=True):
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
