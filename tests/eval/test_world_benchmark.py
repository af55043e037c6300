"""The synthetic world as a benchmark: its files load as EvalItems asked with the samples' own text, the runner
scores them with the world's breakdowns, and ``latentomni eval --benchmark world`` runs on a world."""

from __future__ import annotations

import json

import pytest

from latentomni import cli
from latentomni.data.questions import render_question
from latentomni.data.schema import load_samples
from latentomni.data.world import generate_world
from latentomni.eval import cli as eval_cli
from latentomni.eval.annotations import AnnotationError
from latentomni.eval.benchmarks import get_benchmark
from latentomni.eval.benchmarks.world import HELD_OUT, SEEN
from latentomni.eval.runner import LocalProcess, run_eval


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A world's files (no clips rendered: the media are empty files where the clips would be)."""
    out = tmp_path_factory.mktemp("world")
    manifest = generate_world(out, n_train_clips=4, n_test_clips=3, n_val_clips=2, seed=0, render=False,
                              option_order="canonical")
    for s in load_samples(manifest.path("test")) + load_samples(manifest.path("test_seen")):
        (out / s.video.video).parent.mkdir(parents=True, exist_ok=True)
        (out / s.video.video).touch()
    return manifest


def test_items_are_the_samples_asked_with_their_own_text(world):
    samples = load_samples(world.path("test"))
    items = get_benchmark("world").load(world.path("test"), world.out_dir)
    assert [it.qid for it in items] == [s.id for s in samples]
    for s, it in zip(samples, items, strict=True):
        assert render_question(it) == s.messages[0].content[-1].text, "no answer instruction is added"
        assert it.options == s.options and it.answer == s.answer and it.use_audio and it.audio is None
        assert it.video == world.out_dir / s.video.video
        assert it.meta == {"question_type": s.question_type, "types": HELD_OUT, "clip": s.meta["clip"]}
    seen = get_benchmark("world").load(world.path("test_seen"), world.out_dir)
    assert {it.meta["types"] for it in seen} == {SEEN}


def test_the_runner_scores_the_world_by_question_types(world, scripted, tmp_path):
    items = get_benchmark("world").load(world.path("test"), world.out_dir)
    right = {it.qid: f"so \\boxed{{{it.answer}}}" for it in items[::2]}
    results = run_eval(scripted(right), "world", world.path("test"), world.out_dir, tmp_path / "run", batch_size=2,
                       state=LocalProcess(), progress=False)
    assert results["n"] == len(items) and results["n_correct"] == len(right)
    assert results["breakdowns"]["types"]["groups"][HELD_OUT]["n"] == len(items)
    assert set(results["breakdowns"]["question_type"]["groups"]) == {it.meta["question_type"] for it in items}


def test_eval_command_runs_on_a_world(world, scripted, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(eval_cli, "make_predictor", lambda model_dir, settings: scripted({}))
    code = cli.main(["eval", "--model", str(tmp_path / "ckpt"), "--benchmark", "world", "--annotations",
                     str(world.path("val")), "--media-root", str(world.out_dir), "--out", str(tmp_path / "out"),
                     "--no-progress"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["benchmark"] == "world" and results["n_missing_media"] == results["n_selected"] > 0
    assert "World: accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("options"), "a world question needs its lettered options"),
    (lambda r: r["messages"][0]["content"].reverse(), "the user turn must be the media"),
    (lambda r: r["messages"][0]["content"][0].update(video_start=0.5), "a clip window"),
    (lambda r: r.pop("messages"), r"not a world sample: messages: Field required"),
])
def test_a_record_the_world_cannot_ask_is_one_line_naming_file_and_record(world, tmp_path, edit, message):
    rows = [json.loads(line) for line in world.path("test").read_text().splitlines()]
    edit(rows[1])
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(AnnotationError, match=rf"bad.jsonl: record 1.*{message}") as err:
        get_benchmark("world").load(path, world.out_dir)
    assert "\n" not in str(err.value)

