"""``latentomni demo --sweep [SPEC]``: choose the latent variant's settings on the VALIDATION split.

Issue 17's measured choice: every configuration of a grid (the switches of ``LatentConfig``, the base, the
post-training budget) is trained from its base for a fixed number of steps on the demo's world and scored on
``val.jsonl``, the world's validation split (the training question types on clips of neither the train nor
the test split). The test split is never read here: a setting is chosen by validation accuracy, written into
``configs/demo/latent.yaml``, and only then does ``make demo`` run the test split.

A spec is YAML (``configs/demo/sweep.yaml`` is the default; every field of :class:`SweepSpec`)::

    bases: {committed: committed, grounding: runs/base-grounding}   # name -> checkpoint
    budgets: [240, 720]                 # training steps, each applied to every run
    runs:                               # one configuration each; `config` names configs/demo/<config>.yaml
      - {name: vanilla, config: vanilla}
      - {name: rollout-contrastive, set: {latent.slot_inputs: rollout, latent.latent_loss: contrastive}}
    grid:                               # and/or a product over override keys (on `grid_config`)
      latent.attention_flow: [causal, through_latents]

Every run is trained under every base and budget alike, so an ordering can be read per (base, budget).
Results go to ``<out>/sweep/``: one folder per run (``runs/<id>/``: the model, ``result.json``, the validation
evaluation ``val/``) and the table ``results.md`` / ``results.json``, rewritten after each run. A rerun skips
every run whose ``result.json`` records the same configuration, base checkpoint (by hash), budget and world;
an interrupted run is trained again from its start.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import random
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .run import CHANCE, CONFIG_DIR, DemoSettings, _config, blind_guess, demo_world, evaluate, latent_diagnostics

log = logging.getLogger(__name__)
DEFAULT_SPEC = CONFIG_DIR / "sweep.yaml"
COMMITTED = "committed"  # the base name/value that means DemoSettings.base (the packaged tiny base)


class SweepSpecError(ValueError):
    """A sweep that cannot run as specified (spec file, a run's config, a base, the world's split): one line."""


class SweepRun(BaseModel):
    """One configuration: a demo config and dotted overrides of its fields (``latent.latent_loss: cosine``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    config: str = "latent"
    set: dict[str, Any] = Field(default_factory=dict)

    def label(self) -> str:
        if self.name:
            return self.name
        if not self.set:
            return self.config
        return ",".join(f"{k.rsplit('.', 1)[-1]}={_scalar(v)}" for k, v in self.set.items())


class SweepSpec(BaseModel):
    """A sweep: runs (explicit and/or a product grid), each under every base and budget."""

    model_config = ConfigDict(extra="forbid")

    bases: dict[str, str] = Field(default_factory=lambda: {COMMITTED: COMMITTED})
    budgets: list[int] = Field(default_factory=lambda: [240], min_length=1)
    runs: list[SweepRun] = Field(default_factory=list)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    grid_config: str = "latent"
    # Validation questions scored per run (None: all of val.jsonl) and samples the diagnostics read.
    val_questions: int | None = Field(default=None, ge=1)
    diagnostics_samples: int = Field(default=60, ge=0)

    @field_validator("budgets")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(b < 1 for b in v):
            raise ValueError(f"budgets are training steps and must be >= 1, got {v}")
        return v

    @field_validator("grid")
    @classmethod
    def _lists(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, values in v.items() if not values]
        if empty:
            raise ValueError(f"grid axis {empty[0]!r} lists no values")
        return v

    def expanded_runs(self) -> list[SweepRun]:
        """The explicit runs, then one per point of the grid's product (keys in the spec's order)."""
        keys = list(self.grid)
        product = [SweepRun(config=self.grid_config, set=dict(zip(keys, values, strict=True)))
                   for values in itertools.product(*(self.grid[k] for k in keys))] if keys else []
        return [*self.runs, *product]


@dataclass(frozen=True)
class PlannedRun:
    """One training job of the sweep: a run under one base and one budget."""

    id: str
    label: str
    config: str
    overrides: tuple[str, ...]
    base: str
    base_path: Path
    budget: int


def _scalar(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v).lower() if isinstance(v, bool) else str(v)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "run"


def load_spec(path: str | Path) -> SweepSpec:
    """Read a sweep spec; any problem is one line naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise SweepSpecError(f"sweep spec {path} not found (the default is {DEFAULT_SPEC})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise SweepSpecError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(raw, dict):
        raise SweepSpecError(f"{path}: a sweep spec is a mapping (bases, budgets, runs, grid), "
                             f"got {type(raw).__name__}")
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise SweepSpecError(f"{path}: {field}: {err['msg']}") from None


def plan(spec: SweepSpec, settings: DemoSettings, spec_path: Path) -> list[PlannedRun]:
    """Every (run, base, budget) of the spec, each config loaded and validated before anything trains."""
    bases: dict[str, Path] = {}
    for name, value in spec.bases.items():
        ckpt = Path(settings.base) if value == COMMITTED else Path(value)
        if not (ckpt / "config.json").is_file():
            hint = (f"build it with `python experiments/grounding/pretrain.py --out {ckpt}`" if "ground" in name
                    else "train it with `latentomni pretrain-base --out PATH`")
            raise SweepSpecError(f"{spec_path}: bases.{name}: no checkpoint at {ckpt} (config.json missing); {hint}")
        bases[name] = ckpt
    runs = spec.expanded_runs()
    planned: list[PlannedRun] = []
    seen: dict[str, str] = {}
    # Base, then budget, then run: the cheap budget's whole table lands before the long one starts.
    for (base, ckpt), budget in itertools.product(bases.items(), spec.budgets):
        for i, run in enumerate(runs):
            label = run.label()
            pid = _slug(f"{base}-{budget}-{label}")
            if pid in seen:
                raise SweepSpecError(f"{spec_path}: runs[{i}] ({label!r}) repeats {seen[pid]!r} under base {base}, "
                                 f"budget {budget}; give one of them another name")
            seen[pid] = label
            p = PlannedRun(pid, label, run.config, tuple(f"{k}={_scalar(v)}" for k, v in run.set.items()), base,
                           ckpt, budget)
            try:
                run_config(settings, p)
            except (ValueError, FileNotFoundError) as e:
                raise SweepSpecError(f"{spec_path}: run {label!r} (config {run.config}, set {dict(run.set)}): "
                                     f"{_config_error(e)}") from None
            planned.append(p)
    return planned


def _config_error(e: Exception) -> str:
    """A training-config error in one line: pydantic's 'field / message' pairs, without its boilerplate."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if len(lines) == 1 or not lines[0].endswith("invalid training config:"):
        return " ".join(lines)
    kept = [re.sub(r"\s*\[type=.*$", "", line) for line in lines[1:]
            if not re.match(r"\d+ validation errors? for ", line) and not line.startswith("For further information")]
    return "; ".join(f"{field}: {msg}" for field, msg in zip(kept[::2], kept[1::2], strict=False))


def run_dir(settings: DemoSettings, p: PlannedRun) -> Path:
    return Path(settings.out) / "sweep" / "runs" / p.id


def run_config(settings: DemoSettings, p: PlannedRun):
    """The run's training config: the demo config under the run's base, budget, folder and overrides."""
    over = [*settings.overrides, f"training.output_dir={run_dir(settings, p) / 'model'}", *p.overrides]
    return _config(replace(settings, base=p.base_path, max_steps=p.budget, overrides=over), p.config,
                   Path(settings.out) / "world")


def run_sweep(settings: DemoSettings, spec_path: str | Path = DEFAULT_SPEC) -> dict:
    """Train and score every planned run (skipping finished ones); returns and writes the results table."""
    from ..data.schema import load_samples
    from ..eval.samples import summarize

    spec_path = Path(spec_path)
    spec = load_spec(spec_path)
    planned = plan(spec, settings, spec_path)  # every config is checked before the world is drawn
    world = demo_world(settings)
    val = load_samples(world.path("val"))
    if not val:
        raise SweepSpecError(f"{world.out_dir}: the world has no validation split (n_val_clips=0); "
                             "pass --n-val-clips N")
    if spec.val_questions is not None and len(val) > spec.val_questions:
        val = random.Random(settings.seed).sample(val, spec.val_questions)
    probe = [s for s in val if s.latent_blocks][: spec.diagnostics_samples]
    out = Path(settings.out) / "sweep"
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "spec": str(spec_path), "split": "val", "chance": CHANCE, "n_val": len(val), "diagnostics_samples": len(probe),
        "blind_guess": summarize(blind_guess(load_samples(world.path("train")), val), CHANCE),
        "world": world.counts, "runs": [],
    }
    log.info("sweep: %d runs (%s) on %d validation questions; results in %s", len(planned),
             ", ".join(f"{b}: {n}" for b, n in _count_by(planned).items()), len(val), out)
    t0, trained = time.time(), []
    for i, p in enumerate(planned, 1):
        cfg = run_config(settings, p)
        key = {"train_config": cfg.model_dump(mode="json"), "base_sha256": _sha256(p.base_path),
               "world": world.config.model_dump(mode="json"), "val_ids": _digest([s.id for s in val]),
               "diagnostics_ids": _digest([s.id for s in probe])}
        path = run_dir(settings, p) / "result.json"
        done = _read(path)
        if done is not None and done.get("key") == key:
            log.info("[%d/%d] %s: finished earlier (%s), skipped", i, len(planned), p.id, path)
            results["runs"].append(done)
            continue
        if done is not None:
            log.info("[%d/%d] %s: its configuration changed since %s was written; training again", i, len(planned),
                     p.id, path)
        left = len(planned) - i + 1
        eta = f", about {sum(trained) / len(trained) * left / 60:.0f} min left" if trained else ""
        log.info("[%d/%d] %s: training %d steps from base %s%s", i, len(planned), p.id, p.budget, p.base, eta)
        started = time.time()
        row = score_run(p, cfg, val, probe, world.out_dir, settings)
        trained.append(time.time() - started)
        row["key"] = key
        path.write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
        results["runs"].append(row)
        log.info("[%d/%d] %s: validation accuracy %.3f [%.3f, %.3f] in %.0f s", i, len(planned), p.id,
                 row["val"]["accuracy"], *row["val"]["ci95"], trained[-1])
        write_results(results, out)
    results["wall_s"] = round(time.time() - t0, 1)
    table = write_results(results, out)
    print(table)
    return results


def score_run(p: PlannedRun, cfg, val: list, probe: list, world_dir: Path, settings: DemoSettings) -> dict:
    """Train one run, then its validation accuracy and (for a latent model) the latent diagnostics."""
    from ..eval.samples import summarize
    from ..model.wrapper import LatentOmniModel
    from ..train.trainer import train

    t1 = time.time()
    metrics = train(cfg)
    train_s = time.time() - t1
    model = LatentOmniModel.from_pretrained(cfg.training.output_dir).eval()
    t2 = time.time()
    recs = evaluate(model, p.id, val, world_dir, cfg.data.media, run_dir(settings, p) / "val", settings.eval_batch_size)
    eval_s = time.time() - t2
    summary = summarize(recs, CHANCE)
    t3 = time.time()
    blocks = [r["n_latent_blocks"] for r in recs if "error" not in r]
    diagnostics = latent_diagnostics(model, probe, world_dir, cfg.data.media, blocks)
    return {
        "id": p.id, "label": p.label, "config": p.config, "overrides": list(p.overrides), "base": p.base,
        "base_path": str(p.base_path), "budget": p.budget, "latent_mode": model.latent.latent_mode,
        "val": {k: v for k, v in summary.items() if k != "by_type"}, "val_by_type": summary["by_type"],
        "diagnostics": diagnostics, "train_loss": metrics.get("train_loss"),
        "timings": {"train_s": round(train_s, 1), "eval_s": round(eval_s, 1),
                    "diagnostics_s": round(time.time() - t3, 1)},
    }


def write_results(results: dict, out: Path) -> str:
    from .report import render_sweep_table

    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = render_sweep_table(results)
    (out / "results.md").write_text(table + "\n", encoding="utf-8")
    return table


def _count_by(planned: list[PlannedRun]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in planned:
        counts[f"{p.base}/{p.budget} steps"] = counts.get(f"{p.base}/{p.budget} steps", 0) + 1
    return counts


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _sha256(base: Path) -> str:
    weights = base / "model.safetensors"
    if not weights.is_file():
        return _digest(sorted(p.name for p in base.iterdir()))
    h = hashlib.sha256()
    with weights.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
