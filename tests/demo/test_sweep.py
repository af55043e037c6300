"""`latentomni demo --sweep`: a spec of runs x bases x budgets, each trained and scored on the VALIDATION split
only, a results table, resume that skips finished runs, and one-line errors for a spec that cannot run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from latentomni.demo.base import ASSET_DIR
from latentomni.demo.run import DemoSettings
from latentomni.demo.sweep import DEFAULT_SPEC, SweepSpecError, load_spec, plan, run_sweep
from lo_testing import spy_evaluated_clips

# The repository's demo configs, found from this file: a test that changes the working directory still reads them
# (the demo's default, configs/demo, is relative to the working directory).
CONFIGS = Path(__file__).resolve().parents[2] / DEFAULT_SPEC.parent


def _spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def _plan(path: Path, out: Path) -> list:
    return plan(load_spec(path), DemoSettings(out=out, config_dir=CONFIGS), path)


def test_default_spec_plans_every_switch_of_issue_17_from_the_committed_base(tmp_path):
    runs = _plan(CONFIGS / DEFAULT_SPEC.name, tmp_path)
    assert {p.base for p in runs} == {"committed"} and {p.budget for p in runs} == {240}
    assert {p.base_path for p in runs} == {ASSET_DIR}
    assert len(runs) == 11 and runs[0].config == "vanilla" and runs[1].overrides == ()
    values = {o for p in runs for o in p.overrides}
    for switch in ("slot_inputs=rollout", "slot_inputs=scheduled", "latent_loss=mse_mean", "latent_loss=cosine",
                   "latent_loss=cosine_norm", "latent_loss=contrastive", "sync_negatives=batch",
                   "attention_flow=through_latents"):
        assert f"latent.{switch}" in values, switch


def test_base_and_budget_axes_apply_to_every_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = CONFIGS / "sweep_base_budget.yaml"
    with pytest.raises(SweepSpecError, match=r"sweep_base_budget.yaml: bases.grounding: no checkpoint at "
                                             r"runs/base-grounding .*python experiments/grounding/pretrain.py"):
        _plan(spec, tmp_path / "demo")
    (tmp_path / "runs" / "base-grounding").mkdir(parents=True)
    shutil.copy(ASSET_DIR / "config.json", tmp_path / "runs" / "base-grounding")
    runs = _plan(spec, tmp_path / "demo")
    cells = {(p.base, p.budget) for p in runs}
    assert cells == {("committed", 240), ("committed", 720), ("grounding", 240), ("grounding", 720)}
    by_cell = {c: sorted(p.label for p in runs if (p.base, p.budget) == c) for c in cells}
    assert len({tuple(v) for v in by_cell.values()}) == 1, "every base and budget gets the same runs"
    assert [p.budget for p in runs[:4]] == [240] * 4, "the short budget's table lands first"
    assert len({p.id for p in runs}) == len(runs) == 16


def test_a_grid_expands_to_its_product(tmp_path):
    path = _spec(tmp_path, "budgets: [3]\ngrid:\n  latent.attention_flow: [causal, through_latents]\n"
                           "  latent.lambda_sync: [0.0, 1.0]\nruns: [{name: vanilla, config: vanilla}]\n")
    runs = _plan(path, tmp_path / "demo")
    assert [p.label for p in runs] == ["vanilla", "attention_flow=causal,lambda_sync=0.0",
                                       "attention_flow=causal,lambda_sync=1.0",
                                       "attention_flow=through_latents,lambda_sync=0.0",
                                       "attention_flow=through_latents,lambda_sync=1.0"]
    assert runs[4].overrides == ("latent.attention_flow=through_latents", "latent.lambda_sync=1.0")
    assert runs[4].id == "committed-3-attention_flow=through_latents_lambda_sync=1.0"


@pytest.mark.parametrize("text, message", [
    ("budget: [240]\n", r"spec.yaml: budget: Extra inputs are not permitted"),
    ("budgets: [0]\n", r"spec.yaml: budgets: Value error, budgets are training steps and must be >= 1"),
    ("runs:\n  - {set: {latent.slot_input: rollout}}\n",
     r"spec.yaml: run 'slot_input=rollout' \(config latent, .*slot_input.*Extra inputs are not permitted"),
    ("runs:\n  - {set: {latent.latent_loss: l1}}\n", r"spec.yaml: run 'latent_loss=l1' .*latent_loss.*"
                                                    r"'mse_sum', 'mse_mean', 'cosine', 'cosine_norm' or 'contrastive'"),
    ("runs:\n  - {name: a, config: no_such}\n", r"spec.yaml: run 'a' \(config no_such.*no_such.yaml not found"),
    ("runs:\n  - {name: a}\n  - {name: a, set: {latent.ospe: false}}\n",
     r"spec.yaml: runs\[1\] \('a'\) repeats 'a' under base committed, budget 240"),
    ("grid: {latent.ospe: []}\n", r"spec.yaml: grid: Value error, grid axis 'latent.ospe' lists no values"),
    ("runs: [\n  - {name: a\n", r"spec.yaml:\d+: not valid YAML"),
    ("- 1\n", r"spec.yaml: a sweep spec is a mapping"),
])
def test_a_spec_that_cannot_run_fails_in_one_line_before_anything_trains(tmp_path, text, message):
    with pytest.raises(SweepSpecError, match=message) as err:
        _plan(_spec(tmp_path, text), tmp_path / "demo")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "demo").exists(), "nothing is written before the spec is known to run"


def test_cli_reports_a_bad_spec_in_one_line(tmp_path, capsys):
    from latentomni.cli import main

    assert main(["demo", "--sweep", str(_spec(tmp_path, "budget: 3\n")), "--out", str(tmp_path / "d")]) == 2
    assert capsys.readouterr().out.strip().count("\n") == 0
    assert main(["demo", "--sweep", "--max-steps", "5", "--out", str(tmp_path / "d")]) == 2
    assert "--sweep takes its step budgets" in capsys.readouterr().out


def test_quick_sweep_scores_on_validation_only_writes_the_table_and_resumes(tmp_path, monkeypatch, capsys):
    """Smoke version of the real sweep: a tiny world, 2 runs of 2 steps; a rerun trains nothing, a changed
    run only that one."""
    import latentomni.train.trainer as trainer_mod

    asked = spy_evaluated_clips(monkeypatch)
    spec = "budgets: [2]\nval_questions: 6\ndiagnostics_samples: 3\nruns:\n  - {name: vanilla, config: vanilla}\n" \
           "  - {name: latent-through, set: {latent.attention_flow: through_latents, latent.lambda_sync: %s}}\n"
    path = _spec(tmp_path, spec % "1.0")
    settings = DemoSettings.quick(out=tmp_path / "demo", workers=1)
    results = run_sweep(settings, path)
    assert asked and all(c.startswith("val-") for c in asked), "the sweep never reads the test split"
    assert results["split"] == "val" and results["n_val"] == 6
    assert [r["id"] for r in results["runs"]] == ["committed-2-vanilla", "committed-2-latent-through"]
    for r in results["runs"]:
        lo, hi = r["val"]["ci95"]
        assert 0 <= lo <= r["val"]["accuracy"] <= hi <= 1 and r["val"]["n"] == 6
        assert (tmp_path / "demo" / "sweep" / "runs" / r["id"] / "result.json").is_file()
    latent = results["runs"][1]
    assert results["runs"][0]["diagnostics"] is None, "vanilla has no latents to measure"
    d = latent["diagnostics"]
    assert d["latent/blocks"] > 0 and 0 <= d["latent/trigger_rate"] <= 1
    assert 0 < d["latent/retrieval_chance"] <= 0.5 and 0 <= d["latent/retrieval_trigger"] <= 1
    assert {f"latent/value_{k}" for k in ("anchors", "own", "other", "zeros")} <= d.keys()
    assert latent["latent_mode"] and latent["overrides"] == ["latent.attention_flow=through_latents",
                                                             "latent.lambda_sync=1.0"]
    saved = json.loads((tmp_path / "demo" / "sweep" / "results.json").read_text())
    assert [r["id"] for r in saved["runs"]] == [r["id"] for r in results["runs"]]
    table = (tmp_path / "demo" / "sweep" / "results.md").read_text()
    assert "| **latent-through** | committed | 2 |" in table, "the best latent run of its (base, budget) in bold"
    assert "| vanilla | committed | 2 |" in table and "(n=6)" in table
    assert "- committed, 2 steps: latent-through " in table and "(no latents: vanilla " in table
    assert "| run | base | steps | val accuracy |" in capsys.readouterr().out

    trained: list[str] = []
    monkeypatch.setattr(trainer_mod, "train", lambda cfg, **kw: trained.append(cfg.training.output_dir) or
                        pytest.fail("a finished run was trained again"))
    again = run_sweep(settings, path)
    assert trained == [] and [r["val"] for r in again["runs"]] == [r["val"] for r in results["runs"]]

    monkeypatch.undo()
    changed = run_sweep(settings, _spec(tmp_path, spec % "0.5"))
    assert changed["runs"][0]["timings"] == results["runs"][0]["timings"], "the unchanged run was skipped"
    assert changed["runs"][1]["overrides"][-1] == "latent.lambda_sync=0.5"
