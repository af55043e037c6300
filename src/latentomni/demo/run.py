"""``latentomni demo``: the paper's Table 1 / Table 4 in miniature, on a CPU, by the real code path.

1. Generate the synthetic audio-visual world (train clips, and held-out clips whose questions are of seen
   types and of types never seen as templates in training).
2. From the committed tiny base, train ``latent`` (LatentOmni), ``text_cot`` (Explicit Text CoT) and
   ``vanilla`` (Vanilla SFT) with ``configs/demo/*.yaml`` -- and, with ``--ablations``, the Table 4 switches --
   recording held-out accuracy on a fixed probe set along the way (the learning curves).
3. Evaluate every variant (and the base itself) on all held-out questions with latent-aware generation and
   the shared answer extractor; for the best variant, repeat with the audio and with the video zeroed at
   test time (controls: the questions need both modalities).
4. Print the table (accuracy with 95% Wilson intervals, per question type), write ``results.json``, a bar
   chart and the learning curves.

Nothing is tuned to make any variant win: the table reports what was measured.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import TrainerCallback

from ..data.collate import VARIANTS
from ..data.features import MediaSettings
from ..data.schema import TrainingSample, load_samples
from ..data.world import WorldManifest, generate_world
from ..data.world.questions import OptionOrder
from ..eval.samples import evaluate_world, sample_record, summarize
from ..model.generate import GenerationConfig
from .base import ASSET_DIR

log = logging.getLogger(__name__)
# The demo's YAMLs sit in the repository's configs/demo/, beside the 7B recipe's configs, and are read relative to
# the working directory (`make demo` runs from the repository root) or from --configs: not from the package's
# location, which in an installed wheel has no configs/ above it.
CONFIG_DIR = Path("configs") / "demo"
CHANCE = 0.25


def ablations(config_dir: Path) -> list[str]:
    """The Table 4 ablations ``--ablations`` trains: every ``ablation_*.yaml`` of the config folder, by name (the
    files are the one list of them; adding a file adds a row). The variants are the library's (``VARIANTS``), each
    trained from the config named after it."""
    return sorted(p.stem for p in Path(config_dir).glob("ablation_*.yaml"))


@dataclass
class DemoSettings:
    out: Path = Path("runs/demo")
    base: Path = ASSET_DIR
    config_dir: Path = CONFIG_DIR
    seed: int = 0
    n_train_clips: int = 400
    n_test_clips: int = 240
    # Validation clips (seen question types, clips of neither split) for `demo --sweep`; the demo's own table
    # never reads them, and they leave the train and test splits byte-identical.
    n_val_clips: int = 160
    max_steps: int | None = None  # None: the configs' value
    curve_points: int = 4
    curve_questions: int = 96
    max_seen_questions: int = 200  # seen-type questions evaluated (all unseen-type ones always are)
    eval_batch_size: int = 48
    # Held-out samples with a cited window that the latent diagnostics read (latent variant and ablations).
    diagnostics_samples: int = 60
    ablations: bool = False
    workers: int = 2
    # Options in each attribute's fixed order: the tiny base cannot copy a letter from an option's text
    # (README, "With shuffled options: where the chain breaks"), so with shuffled options no variant can
    # show what it perceived.
    option_order: OptionOrder = "canonical"
    overrides: list[str] = field(default_factory=list)

    @classmethod
    def quick(cls, **kw) -> DemoSettings:
        """The <= 3-minute smoke run used by a test: same code path, tiny sizes."""
        return cls(**{"n_train_clips": 24, "n_test_clips": 8, "n_val_clips": 4, "max_steps": 8, "curve_points": 1,
                      "curve_questions": 12, "max_seen_questions": 12, "eval_batch_size": 32,
                      "diagnostics_samples": 4, **kw})


class HeldOutCurve(TrainerCallback):
    """Held-out accuracy on a fixed probe set at a few points of training (the learning curve)."""

    def __init__(self, samples, base_dir: Path, media: MediaSettings, every: int, out_dir: Path, name: str,
                 start: dict | None = None):
        self.samples, self.base_dir, self.media, self.every = samples, base_dir, media, every
        self.out_dir, self.name = Path(out_dir), name  # one evaluation folder per point: <out_dir>/<name>-step<N>
        self.points: list[dict] = [start] if start else []  # step 0 is the base model, measured once

    def measure(self, model, step: int) -> None:
        recs = evaluate(model, f"{self.name}@step{step}", self.samples, self.base_dir, self.media,
                        self.out_dir / f"{self.name}-step{step}", batch_size=32, progress=False)
        acc = sum(r["correct"] for r in recs) / max(len(recs), 1)
        self.points.append({"step": step, "accuracy": acc})
        log.info("step %d: held-out probe accuracy %.3f", step, acc)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 and state.global_step < state.max_steps:
            self.measure(model, state.global_step)


def missing_config(config_dir: Path, path: Path) -> str:
    """The one-line error for a demo config that is not there: a relative folder names the working directory it
    was looked up in, so running from outside the repository says so instead of naming a bare path."""
    where = f" under the working directory {Path.cwd()}" if not config_dir.is_absolute() else ""
    if not config_dir.is_dir():
        return (f"demo configs: no folder {config_dir}{where}; run the demo from the repository root (as "
                f"`make demo` does) or pass --configs DIR (the YAMLs are in the repository's configs/demo/)")
    return f"demo configs: {path}{where} not found; --configs {config_dir} must hold every config the demo trains"


def _config(settings: DemoSettings, name: str, world_dir: Path):
    from ..train.config import load_config

    path = settings.config_dir / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(missing_config(settings.config_dir, path))
    over = [f"model.base={settings.base}", f"data.train_file={world_dir / 'train.jsonl'}",
            f"training.output_dir={settings.out / 'variants' / name}", f"training.seed={settings.seed}",
            "training.report_to=[tensorboard]", "training.save_steps=100000", *settings.overrides]
    if settings.max_steps is not None:
        over.append(f"training.max_steps={settings.max_steps}")
    return load_config(path, over)


def run_demo(settings: DemoSettings) -> dict:
    from ..model.wrapper import LatentOmniModel
    from ..train.trainer import train

    t0 = time.time()
    torch.manual_seed(settings.seed)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    world = demo_world(settings)
    seen = load_samples(world.path("test_seen"))
    seen = random.Random(settings.seed).sample(seen, min(settings.max_seen_questions, len(seen)))
    held_out = {"unseen_types": load_samples(world.path("test")), "seen_types": seen}
    all_test = held_out["unseen_types"] + held_out["seen_types"]
    probe = random.Random(settings.seed).sample(all_test, min(settings.curve_questions, len(all_test)))
    diag_samples = [s for s in all_test if s.latent_blocks][: settings.diagnostics_samples]
    timings = {"world_s": round(time.time() - t0, 1)}
    guess = summarize(blind_guess(load_samples(world.path("train")), all_test), CHANCE)

    names = list(VARIANTS) + (ablations(settings.config_dir) if settings.ablations else [])
    rows: dict[str, dict] = {}
    curves: dict[str, list[dict]] = {}
    media = _config(settings, names[0], world.out_dir).data.media
    evals = out / "eval"  # one evaluation folder (questions, settings, predictions, results) per row
    base = LatentOmniModel.from_pretrained(settings.base).eval()
    start = HeldOutCurve(probe, world.out_dir, media, 1, evals / "curves", "base")
    start.measure(base, 0)
    rows["base (no post-training)"] = _evaluate(base, held_out, world.out_dir, media, settings, evals / "base")
    del base
    for name in names:
        cfg = _config(settings, name, world.out_dir)
        steps = cfg.training.max_steps
        every = max(1, steps // max(settings.curve_points, 1))
        curve = HeldOutCurve(probe, world.out_dir, cfg.data.media, every, evals / "curves", name, start.points[0])
        t1 = time.time()
        train(cfg, callbacks=[curve])
        model = LatentOmniModel.from_pretrained(cfg.training.output_dir).eval()
        curve.measure(model, steps)
        curves[name] = curve.points
        timings[f"train_{name}_s"] = round(time.time() - t1, 1)
        t2 = time.time()
        # The latent variant and its ablations (the only ones in latent mode) get the diagnostics.
        rows[name] = _evaluate(model, held_out, world.out_dir, cfg.data.media, settings, evals / name,
                               diag_samples)
        timings[f"eval_{name}_s"] = round(time.time() - t2, 1)

    best = max(VARIANTS, key=lambda n: rows[n]["all"]["accuracy"])
    best_model = LatentOmniModel.from_pretrained(settings.out / "variants" / best).eval()
    controls = {
        f"{zeroed} zeroed": _evaluate(best_model, held_out, world.out_dir,
                                      media.model_copy(update={f"zero_{zeroed}": True}), settings,
                                      evals / f"{best}-{zeroed}-zeroed")
        for zeroed in ("audio", "video")
    }
    timings["total_s"] = round(time.time() - t0, 1)
    results = {
        "chance": CHANCE, "blind_guess": guess, "diagnostics_samples": len(diag_samples), "best_variant": best,
        "variants": rows,
        "controls": {"variant": best, **controls},
        "learning_curves": curves, "timings": timings, "world": world.counts,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    from .report import plot_accuracy, plot_curves, render_table

    plot_accuracy(results, out / "accuracy.png")
    plot_curves(results, out / "learning_curves.png")
    table = render_table(results)
    (out / "results.md").write_text(table + "\n")
    print(table)
    return results


def demo_world(settings: DemoSettings) -> WorldManifest:
    """The world the demo and its sweep share (``out/world``), rendered once and reused."""
    return generate_world(Path(settings.out) / "world", n_train_clips=settings.n_train_clips,
                          n_test_clips=settings.n_test_clips, seed=settings.seed, workers=settings.workers,
                          option_order=settings.option_order, n_val_clips=settings.n_val_clips)


def latent_diagnostics(model, samples: list[TrainingSample], world_dir: Path, media: MediaSettings,
                       num_blocks: list[int] | None = None, batch_size: int = 8) -> dict[str, float] | None:
    """Issue 17's latent diagnostics (:func:`..model.diagnostics.diagnose`: free-running fidelity, segment
    retrieval among the clip's segments, the trigger's retrieval, latent value) of ``samples`` (each with a
    cited window), and the trigger rate of the replies whose latent block counts are ``num_blocks``. None
    for a model without latent mode or without samples: there is nothing to measure."""
    from ..data.collate import SampleEncoder, batch_to, collate
    from ..data.media import MediaError
    from ..model.diagnostics import diagnose

    if not model.latent.latent_mode or not samples:
        return None
    enc = SampleEncoder.for_model(model, media, media_cache_size=64)
    encoded = []
    for s in samples:
        try:
            encoded.append(enc.encode(s, world_dir, variant="latent"))
        except MediaError as e:
            log.warning("diagnostics: sample %s left out: %s", s.id, " ".join(str(e).split()))
    pad = model.processor.tokenizer.pad_token_id
    batches = (batch_to(collate(encoded[i:i + batch_size], pad), model.device)
               for i in range(0, len(encoded), batch_size))
    return {k: round(v, 6) for k, v in diagnose(model, batches, num_blocks).items()}


def blind_guess(train: list[TrainingSample], held_out: list[TrainingSample]) -> list[dict]:
    """Records of the best guess that sees neither the clip nor the options' meaning: each question type's
    most frequent answer letter in training (the overall most frequent for a type training never asked).

    Chance is 1/4 only while letters are uniform; a type whose options always include a value that is never
    right (counts offer 'four') or whose options are listed in a fixed order lets a letter prior beat it. A
    model that learned nothing from the media can reach this level, so the table shows it beside chance.
    """
    by_type: dict[str | None, Counter] = {}
    for s in train:
        by_type.setdefault(s.question_type, Counter())[s.answer] += 1
    overall = sum(by_type.values(), Counter())
    return [sample_record(s, (by_type.get(s.question_type) or overall).most_common(1)[0][0], "", 0) for s in held_out]


def _gen_config() -> GenerationConfig:
    return GenerationConfig(max_new_tokens=160, max_latent_blocks=3)


def evaluate(model, name: str, samples: list[TrainingSample], world_dir: Path, media: MediaSettings, out_dir: Path,
             batch_size: int, progress: bool = True) -> list[dict]:
    """The records of ``model`` on ``samples`` by the one prediction path (the predictor, ``run_eval`` on the
    ``world`` benchmark; :func:`..eval.samples.evaluate_world`), greedy with the demo's decoding
    (:func:`_gen_config`); ``out_dir`` keeps the run's questions, settings and predictions."""
    from ..inference.predictor import LatentOmniPredictor

    # World clips are a few kB of pixels each: keep every clip of a split decoded (the cache never changes a reply).
    predictor = LatentOmniPredictor.from_model(model, name, media, _gen_config(), media_cache_size=256)
    return evaluate_world(predictor, samples, world_dir, out_dir, batch_size, progress)


def _evaluate(model, held_out: dict, world_dir: Path, media: MediaSettings, settings: DemoSettings, out_dir: Path,
              diagnostics_samples: list[TrainingSample] | None = None) -> dict:
    """Accuracy on the held-out questions (all, per split), evaluated into ``out_dir``; with
    ``diagnostics_samples``, a latent model's diagnostics too (the trigger rate over these replies)."""
    samples = [s for split in held_out.values() for s in split]
    recs = evaluate(model, str(out_dir.name), samples, world_dir, media, out_dir, settings.eval_batch_size)
    # Each record's split by its position, not its id: test.jsonl and test_seen.jsonl number a clip's questions
    # alike, so one id can name a question of each split.
    split_of = [split for split, group in held_out.items() for _ in group]
    parts = {split: summarize([r for r, sp in zip(recs, split_of, strict=True) if sp == split], CHANCE)
             for split in held_out}
    row = {"all": summarize(recs, CHANCE), **parts, "examples": [r["reply"] for r in recs[:2]]}
    if diagnostics_samples is not None and model.latent.latent_mode:
        t0 = time.time()
        blocks = [r["n_latent_blocks"] for r in recs if "error" not in r]
        row["diagnostics"] = latent_diagnostics(model, diagnostics_samples, world_dir, media, blocks)
        row["diagnostics_s"] = round(time.time() - t0, 1)
    return row
