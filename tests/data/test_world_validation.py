"""The world's validation split: new clips with the training question types, drawn so that adding it leaves
the train and test splits (their files, their clips, their rows in the shared files) byte-identical."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from latentomni.data.schema import load_samples
from latentomni.data.world import WorldConfig, clip_from_record, generate_world


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_adding_a_validation_split_leaves_train_and_test_byte_identical(tmp_path):
    without = generate_world(tmp_path / "without", n_train_clips=5, n_test_clips=3, seed=4)
    with_val = generate_world(tmp_path / "with", n_train_clips=5, n_test_clips=3, seed=4, n_val_clips=3)
    a, b = _files(without.out_dir), _files(with_val.out_dir)
    for name in ("train.jsonl", "test.jsonl", "test_seen.jsonl", "perception.jsonl"):
        assert a[name] == b[name], f"{name} changed when the validation split was added"
    clips_a = {n for n in a if n.endswith(".mp4")}
    assert clips_a and clips_a <= set(b) and all(a[n] == b[n] for n in clips_a), "a train/test clip changed"
    assert {n for n in b if n.endswith(".mp4")} - clips_a == {f"clips/val-{i:06d}.mp4" for i in range(3)}
    for name in ("captions.jsonl", "ground_truth.jsonl"):
        old, new = _lines(without.out_dir / name), _lines(with_val.out_dir / name)
        assert new[: len(old)] == old and len(new) == len(old) + 3, name
    assert a["val.jsonl"] == b"" and without.counts["val"] == 0
    assert with_val.counts["val_clips"] == 3 and with_val.counts["val"] > 0


def test_validation_split_asks_the_training_types_on_clips_of_neither_split(tmp_path):
    world = generate_world(tmp_path, n_train_clips=60, n_test_clips=30, seed=1, n_val_clips=40, render=False)
    config = WorldConfig(**json.loads((tmp_path / "manifest.json").read_text())["config"])
    val = load_samples(world.path("val"))
    assert {s.question_type for s in val} == set(config.seen_types), "validation = the training question types"
    assert not {s.question_type for s in val} & set(config.held_out_types)
    assert {s.meta["clip"] for s in val} <= {f"val-{i:06d}" for i in range(40)}
    rows = [json.loads(line) for line in _lines(world.path("ground_truth"))]
    by_split: dict[str, set] = {}
    for r in rows:
        by_split.setdefault(r["split"], set()).add(clip_from_record(r).signature())
    assert len(by_split["val"]) == 40
    assert not by_split["val"] & (by_split["train"] | by_split["test"]), "a validation clip repeats another split's"
    assert world.question_types["val"] and sum(world.question_types["val"].values()) == len(val)
    assert {s.id for s in val}.isdisjoint({s.id for s in load_samples(world.path("test_seen"))})


def test_validation_split_is_deterministic_and_reuses_a_finished_world(tmp_path):
    first = generate_world(tmp_path / "a", 3, 2, seed=7, n_val_clips=2, render=False)
    again = generate_world(tmp_path / "b", 3, 2, seed=7, n_val_clips=2, render=False)
    assert first.path("val").read_bytes() == again.path("val").read_bytes()
    assert generate_world(tmp_path / "c", 3, 2, seed=8, n_val_clips=2, render=False).path("val").read_bytes() \
        != first.path("val").read_bytes()


def test_a_negative_validation_size_is_refused():
    with pytest.raises(ValueError, match="n_val_clips"):
        WorldConfig(n_val_clips=-1)


def test_cli_writes_the_validation_split(tmp_path, capsys):
    from latentomni.data.cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["world", "--out", str(tmp_path), "--n-train", "4", "--n-test", "2", "--n-val", "3",
                              "--no-render", "--quiet"])
    assert args.func(args) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["counts"]["val_clips"] == 3 and manifest["files"]["val"] == "val.jsonl"
    assert "val.jsonl" in capsys.readouterr().out


def test_reasoning_samples_carry_every_segment_of_their_clip(tmp_path):
    """meta.segments lets a batch tell the cited segment from the clip's others (contrastive latent loss,
    retrieval diagnostic); the cited windows are among them."""
    world = generate_world(tmp_path, n_train_clips=8, n_test_clips=4, seed=2, n_val_clips=4, render=False)
    clips = {r["id"]: clip_from_record(r) for r in map(json.loads, _lines(world.path("ground_truth")))}
    for role in ("train", "test", "test_seen", "val"):
        for s in load_samples(world.path(role)):
            segs = [(seg.start, seg.end) for seg in clips[s.meta["clip"]].segments]
            assert [tuple(x) for x in s.meta["segments"]] == segs, s.id
            assert {(b.start, b.end) for b in s.latent_blocks} <= set(segs)
