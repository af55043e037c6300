"""The training loader keeps media inside the media root: a path climbing out, an absolute path and a symlink
leading out are skipped with their reason in skipped.jsonl, the other samples train; the switches let them in."""

import json
import os
import shutil

from latentomni.data.collate import SampleEncoder
from latentomni.data.features import MediaSettings
from latentomni.train.data import LatentDataset
from lo_testing import make_sample


def _dataset(tmp_path, model, rows, **kwargs):
    data = tmp_path / "data" / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    enc = SampleEncoder.for_model(model, MediaSettings(max_pixels=3136))
    return LatentDataset(data, enc, skipped_log=tmp_path / "skipped.jsonl", **kwargs)


def test_media_outside_the_root_is_refused_per_sample(model, clip_dir, tmp_path):
    (tmp_path / "data").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(clip_dir / "clip4.mp4", tmp_path / "data" / "inside.mp4")
    shutil.copy(clip_dir / "clip4.mp4", outside / "x.mp4")
    os.symlink(outside / "x.mp4", tmp_path / "data" / "link.mp4")
    rows = [make_sample("ok", video="inside.mp4"), make_sample("climbs", video="../outside/x.mp4"),
            make_sample("absolute", video=str(outside / "x.mp4")), make_sample("symlink", video="link.mp4")]
    ds = _dataset(tmp_path, model, rows)
    assert [s.id for s in ds.samples] == ["ok"]
    skipped = {r["id"]: r for r in map(json.loads, (tmp_path / "skipped.jsonl").read_text().splitlines())}
    assert sorted(skipped) == ["absolute", "climbs", "symlink"]
    assert all("media_root" in r["reason"] or "media root" in r["reason"] for r in skipped.values()), skipped

    (tmp_path / "skipped.jsonl").unlink()
    ds = _dataset(tmp_path, model, rows, allow_absolute_media=True)
    assert sorted(s.id for s in ds.samples) == ["absolute", "ok", "symlink"]  # '..' is never let out

    (tmp_path / "skipped.jsonl").unlink()
    ds = _dataset(tmp_path, model, rows, media_root=tmp_path)
    assert sorted(s.id for s in ds.samples) == ["absolute", "climbs", "ok", "symlink"]
