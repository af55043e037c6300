"""`python experiments/grounding/pretrain.py`'s code path on a tiny budget: the committed recipe's stages, then the
grounding stage through ``pretrain_base``'s :class:`ExtraStage` hook, written with its recipe and report."""

import json

import pytest
from grounding_stage import GROUNDING_STAGE, grounding_stage

from latentomni.demo import base as base_mod
from latentomni.demo.base import ExtraStage, sha256
from latentomni.model.wrapper import LatentOmniModel


def test_pretrain_with_the_grounding_stage_writes_a_loadable_checkpoint_with_its_recipe(tmp_path, monkeypatch):
    recipe = json.loads(json.dumps(base_mod.RECIPE))
    recipe["world"].update(n_train_clips=6, n_test_clips=2)
    recipe["encoders"].update(steps=3, batch_size=4)
    monkeypatch.setattr(base_mod, "RECIPE", recipe)
    grounding = json.loads(json.dumps(GROUNDING_STAGE))
    grounding["world"].update(n_train_clips=4, n_test_clips=1)
    report = base_mod.pretrain_base(tmp_path / "out", tmp_path / "work", max_steps=3, max_minutes=5, workers=1,
                                    extra=grounding_stage(grounding))
    assert report["steps_trained"] == 3 and [s["steps"] for s in report["stages"]] == [1, 2]
    saved = json.loads((tmp_path / "out" / "recipe.json").read_text())
    assert saved["sha256"]["model.safetensors"] == sha256(tmp_path / "out" / "model.safetensors")
    assert saved["recipe"]["grounding"]["world"]["n_train_clips"] == 4
    assert saved["command"] == "python experiments/grounding/pretrain.py"
    assert [p["steps"] for p in saved["grounding"]["phases"]] == [3, 3]
    assert set(saved["grounding"]["pools"]) == {"open", "choice", "perception", "first_last", "copy"}
    assert all(n > 0 for n in saved["grounding"]["pools"].values())
    LatentOmniModel.from_pretrained(tmp_path / "out")


def test_the_hook_recipe_is_a_copy_so_the_stage_constant_never_changes():
    stage = grounding_stage()
    assert isinstance(stage, ExtraStage) and stage.name == "grounding" and stage.recipe == GROUNDING_STAGE
    stage.recipe["phases"].clear()
    assert GROUNDING_STAGE["phases"], "the measured phases stay as written"
    with pytest.raises(AttributeError):
        stage.name = "other"  # frozen: the stage saved in recipe.json is the one that ran


def test_stage3_on_the_committed_base_records_that_base_and_its_own_recipe(tmp_path):
    from pretrain import stage3_on_base

    from latentomni.demo.base import ASSET_DIR

    grounding = json.loads(json.dumps(GROUNDING_STAGE))
    grounding["world"].update(n_train_clips=4, n_test_clips=1)
    saved = stage3_on_base(ASSET_DIR, tmp_path / "out", tmp_path / "work", max_steps=2, workers=1,
                           stage=grounding_stage(grounding))
    committed = json.loads((ASSET_DIR / "recipe.json").read_text())
    assert saved["on_base"]["sha256"] == committed["sha256"], "the base it started from, by hash"
    assert saved["recipe"]["stages"] == committed["recipe"]["stages"] and "grounding" in saved["recipe"]
    assert [p["steps"] for p in saved["grounding"]["phases"]] == [2, 2]
    assert saved["sha256"]["model.safetensors"] == sha256(tmp_path / "out" / "model.safetensors")
    assert saved["command"].endswith(f"--on-base {ASSET_DIR}")
    LatentOmniModel.from_pretrained(tmp_path / "out")
    with pytest.raises(SystemExit, match="no checkpoint there"):
        stage3_on_base(tmp_path / "nothing", tmp_path / "out2", tmp_path / "work2", 1, 1)
