"""The embedded default end to end: `make base`'s code path on a tiny budget, and `latentomni demo --quick`."""

import json

from latentomni.demo import base as base_mod
from latentomni.demo.base import ASSET_DIR, sha256
from latentomni.model.wrapper import LatentOmniModel
from lo_testing import spy_evaluated_clips


def test_committed_base_checkpoint_matches_its_recipe_hash():
    recipe = json.loads((ASSET_DIR / "recipe.json").read_text())
    assert recipe["sha256"]["model.safetensors"] == sha256(ASSET_DIR / "model.safetensors")
    assert (ASSET_DIR / "model.safetensors").stat().st_size < 8 * 2**20, "a few MB, as committed"
    model = LatentOmniModel.from_pretrained(ASSET_DIR)
    assert not model.latent.latent_mode
    assert {"visual_accuracy", "audio_accuracy"} <= recipe["perception"].keys()


def test_pretrain_base_writes_a_loadable_checkpoint_with_recipe(tmp_path, monkeypatch):
    recipe = json.loads(json.dumps(base_mod.RECIPE))
    recipe["world"].update(n_train_clips=6, n_test_clips=2)
    recipe["encoders"].update(steps=3, batch_size=4)
    monkeypatch.setattr(base_mod, "RECIPE", recipe)
    report = base_mod.pretrain_base(tmp_path / "out", tmp_path / "work", max_steps=3, max_minutes=5, workers=1)
    assert report["steps_trained"] == 3 and [s["steps"] for s in report["stages"]] == [1, 2]
    first_last, perception = report["stages"]
    n_perception = len((tmp_path / "work" / "world" / "perception.jsonl").read_text().splitlines())
    assert perception["samples"] == first_last["samples"] + n_perception, "stage 2 keeps stage 1's data in the mix"
    saved = json.loads((tmp_path / "out" / "recipe.json").read_text())
    assert saved["sha256"]["model.safetensors"] == sha256(tmp_path / "out" / "model.safetensors")
    assert saved["perception"]["segments"] > 0
    probes = saved["perception"]["first_last"]
    assert probes["colour_first"].keys() == {"as is", "video zeroed", "audio zeroed"}
    assert saved["encoders"]["steps"] == 3 and "colour" in saved["encoders"]["heldout_readout_accuracy"]
    assert saved["command"] == "latentomni pretrain-base  (make base)" and "grounding" not in saved
    LatentOmniModel.from_pretrained(tmp_path / "out")


def test_quick_demo_runs_every_variant_and_writes_the_report(tmp_path, capsys, monkeypatch):
    from latentomni.cli import main

    asked = spy_evaluated_clips(monkeypatch)
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert asked and all(c.startswith("test-") for c in asked), "the demo's table never reads the validation split"
    assert (out / "world" / "val.jsonl").stat().st_size > 0, "the world the sweep shares has its validation split"
    results = json.loads((out / "results.json").read_text())
    assert {"latent", "text_cot", "vanilla", "base (no post-training)"} <= results["variants"].keys()
    for row in results["variants"].values():
        lo, hi = row["all"]["ci95"]
        assert 0 <= lo <= row["all"]["accuracy"] <= hi <= 1 and row["all"]["n"] > 0
        assert row["unseen_types"]["n"] > 0 and row["seen_types"]["n"] > 0
        assert row["unseen_types"]["n"] + row["seen_types"]["n"] == row["all"]["n"], "each question in one split"
    n_unseen = len((out / "world" / "test.jsonl").read_text().splitlines())
    assert results["variants"]["latent"]["unseen_types"]["n"] == n_unseen, "every held-out-type question counted"
    assert {"audio zeroed", "video zeroed"} <= results["controls"].keys()
    assert results["blind_guess"]["n"] == results["variants"]["vanilla"]["all"]["n"]
    assert results["settings"]["option_order"] == "canonical"
    assert all(len(points) >= 2 for points in results["learning_curves"].values())
    diagnostics = results["variants"]["latent"]["diagnostics"]
    assert diagnostics["latent/blocks"] > 0 and 0 <= diagnostics["latent/trigger_rate"] <= 1
    assert {"latent/fidelity_cos", "latent/retrieval", "latent/retrieval_trigger", "latent/value_own",
            "latent/value_zeros"} <= diagnostics.keys()
    assert "diagnostics" not in results["variants"]["vanilla"], "diagnostics are for latent-mode variants"
    for name in ("accuracy.png", "learning_curves.png", "results.md"):
        assert (out / name).stat().st_size > 0
    printed = capsys.readouterr().out
    assert "| latent |" in printed and "Controls for the best variant" in printed
    assert "Latent diagnostics on" in printed and "| retrieval (chance) |" in printed


def test_blind_guess_is_each_types_most_frequent_training_letter(tmp_path):
    """The no-media baseline beside chance: a letter prior per question type (overall for a type training
    never asked), and the table judges the best variant against whichever of the two is higher."""
    from collections import Counter

    from latentomni.data.schema import load_samples
    from latentomni.data.world import generate_world
    from latentomni.demo.report import render_table
    from latentomni.demo.run import blind_guess
    from latentomni.eval.samples import summarize

    world = generate_world(tmp_path, n_train_clips=40, n_test_clips=20, seed=2, render=False,
                           option_order="canonical")
    train, test = load_samples(world.path("train")), load_samples(world.path("test"))
    counts = [s for s in load_samples(world.path("test_seen")) if s.question_type == "count_at_sound"]
    recs = blind_guess(train, counts + test)
    assert {r["pred"] for r in recs[:len(counts)]} <= {"A", "B", "C"}, "'four' (D) is never right on a count"
    overall = Counter(s.answer for s in train).most_common(1)[0][0]
    assert {r["pred"] for r in recs[len(counts):]} == {overall}, "held-out types fall back to the overall prior"
    assert [r["correct"] for r in recs] == [r["pred"] == s.answer for r, s in zip(recs, counts + test, strict=True)]

    row = {"all": {**summarize(recs), "ci95": [0.28, 0.9]}}
    row |= {"unseen_types": row["all"], "seen_types": row["all"]}

    def verdict(guess_accuracy: float) -> str:
        results = {"chance": 0.25, "blind_guess": {**summarize(recs), "accuracy": guess_accuracy},
                   "variants": {"vanilla": row}, "controls": {"variant": "vanilla", "audio zeroed": row,
                                                             "video zeroed": row}}
        return render_table(results).splitlines()[-1]

    assert verdict(0.30) == ("The best variant's 95% interval does NOT lie above both chance (25%) and the blind "
                             "guess (30.0%).")
    assert "interval lies above both" in verdict(0.20)
