"""The training dataset probes what encoding needs, and every sample it leaves out -- at the probe or when it
fails to encode later -- is logged once in skipped.jsonl and counted once, in the process that found it or not."""

import json
import shutil

import pytest
from torch.utils.data import DataLoader

from latentomni.data.collate import SampleEncoder
from latentomni.data.features import MediaSettings
from latentomni.data.media import MediaError, probe_duration
from latentomni.data.render import render_av, tone
from latentomni.train.data import LatentDataset
from lo_testing import make_sample


def _dataset(model, tmp_path, rows, **kwargs) -> LatentDataset:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    media = kwargs.pop("media", {})
    enc = SampleEncoder.for_model(model, MediaSettings(max_pixels=56 * 56, **media))
    return LatentDataset(data, enc, skipped_log=tmp_path / "out" / "skipped.jsonl", allow_absolute_media=True, **kwargs)


def _log(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("use_audio_in_video", [True, False])
def test_an_audio_only_file_given_as_a_video_is_skipped_at_the_probe(model, clip_dir, tmp_path,
                                                                      use_audio_in_video):
    speech = render_av(tmp_path / "speech.mp4", None, 4, tone(440.0, 4.0, 44100), 44100)
    assert probe_duration(speech) == pytest.approx(4.0, abs=0.1)  # what the old probe accepted it by
    rows = [make_sample("good", video=str(clip_dir / "clip4.mp4")), make_sample("audio-only", video="speech.mp4")]
    ds = _dataset(model, tmp_path, rows, media={"use_audio_in_video": use_audio_in_video})
    assert [s.id for s in ds.samples] == ["good"]
    assert ds.skipped == {"no video stream": 1}
    (row,) = _log(tmp_path)
    assert row["id"] == "audio-only" and row["stage"] == "probe" and row["path"].endswith("speech.mp4")
    assert row["reason"] == "no video stream (an audio-only file given as a video)"


def test_the_probe_checks_the_audio_part_and_the_clip_window(model, clip_dir, tmp_path):
    no_audio = make_sample("video-as-audio", video=str(clip_dir / "clip4.mp4"))
    no_audio["messages"][0]["content"].insert(1, {"type": "audio", "audio": str(clip_dir / "silent.mp4")})
    late = make_sample("late-clip", video=str(clip_dir / "clip4.mp4"), blocks=())
    late["messages"][0]["content"][0]["video_start"] = 9.0
    ds = _dataset(model, tmp_path, [make_sample("good", video=str(clip_dir / "clip4.mp4")), no_audio, late])
    assert [s.id for s in ds.samples] == ["good"]
    assert ds.skipped == {"no audio track": 1, "window outside media": 1}
    reasons = {r["id"]: r["reason"] for r in _log(tmp_path)}
    assert reasons["video-as-audio"] == "no audio track"
    assert reasons["late-clip"].startswith("sample late-clip: clip window starts at 9.0 s")


class CountingEncoder(SampleEncoder):
    """Counts how often each sample is encoded (the test checks a broken file is not decoded every epoch)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: dict[str, int] = {}

    def encode(self, sample, *args, **kwargs):
        self.calls[sample.id] = self.calls.get(sample.id, 0) + 1
        return super().encode(sample, *args, **kwargs)


def _break_after_probe(model, clip_dir, tmp_path, encoder_cls=SampleEncoder):
    """Three samples, each with its own copy of a clip; b's file is overwritten with garbage after the probe
    passed it (a file that changed on shared storage, or one that fails only when decoded)."""
    for name in "abc":
        shutil.copy(clip_dir / "clip4.mp4", tmp_path / f"{name}.mp4")
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(make_sample(n, video=f"{n}.mp4")) + "\n" for n in "abc"))
    enc = encoder_cls.for_model(model, MediaSettings(max_pixels=56 * 56))
    log = tmp_path / "out" / "skipped.jsonl"
    ds = LatentDataset(data, enc, skipped_log=log, allow_absolute_media=True)
    assert len(ds) == 3 and ds.skipped == {} and not log.exists()
    (tmp_path / "b.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return ds, data, log


def test_a_file_that_fails_at_encode_is_logged_and_counted_once_and_stood_in_for(model, clip_dir, tmp_path):
    ds, _, _ = _break_after_probe(model, clip_dir, tmp_path, CountingEncoder)
    for _epoch in range(3):
        assert [ds[i].sample_id for i in range(3)] == ["a", "c", "c"]  # the next good sample stands in for b
    assert ds.encoder.calls["b"] == 1  # not decoded again every epoch
    assert ds.skipped == {"cannot open media": 1}
    (row,) = _log(tmp_path)
    assert row["id"] == "b" and row["stage"] == "encode" and row["reason"].startswith("cannot open media")


def test_encode_failures_in_workers_and_later_runs_are_logged_once_and_counted(model, clip_dir, tmp_path):
    ds, data, log = _break_after_probe(model, clip_dir, tmp_path)
    loader = DataLoader(ds, batch_size=None, num_workers=1)  # the failure happens in the worker process
    for _epoch in range(2):  # a fresh worker each epoch meets b again
        assert [e.sample_id for e in loader] == ["a", "c", "c"]
    assert [r["id"] for r in _log(tmp_path)] == ["b"]
    assert ds.skipped == {"cannot open media": 1}  # read back from the log the worker wrote
    # a resumed run appending to the same log: its probe now finds b broken; still one row, counted once
    again = LatentDataset(data, ds.encoder, skipped_log=log, allow_absolute_media=True)
    assert again[1].sample_id == "c" and again.skipped == {"cannot open media": 1}
    assert [r["id"] for r in _log(tmp_path)] == ["b"]


def test_fail_fast_raises_the_encode_error(model, clip_dir, tmp_path):
    ds, _, _ = _break_after_probe(model, clip_dir, tmp_path)
    ds.fail_fast = True
    with pytest.raises(MediaError, match=r"b\.mp4: cannot open media"):
        ds[1]
