"""Caption records: native validation and the ASID / AVoCaDO adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentomni.synth.config import parse_config
from latentomni.synth.sources import RecordError, SourceRecord, adapt, parse_time_spans
from latentomni.synth.stages.base import StageContext
from latentomni.synth.stages.ingest import ingest_records

from .conftest import caption_record, write_config


def test_time_spans_in_several_notations():
    text = ("[00:01 - 00:04] A man lifts a cup. (0:04-0:06) He says \"cheers\". <6.5s-8s> Glasses clink. "
            "from 8.0s to 9.5s, the music fades.")
    assert parse_time_spans(text) == [
        (1.0, 4.0, "A man lifts a cup."), (4.0, 6.0, 'He says "cheers".'), (6.5, 8.0, "Glasses clink."),
        (8.0, 9.5, "the music fades."),
    ]


def test_native_record_validates(tmp_path: Path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    clip = adapt(SourceRecord("f:1", caption_record("teal", "a.mp4", 4.0)), "native", tmp_path)
    assert clip.media == str((tmp_path / "a.mp4").resolve()) and clip.where == "f:1"
    assert [e.start for e in clip.events] == sorted(e.start for e in clip.events)


@pytest.mark.parametrize("mutate, reason", [
    (lambda r: r.pop("caption"), "invalid_record"),
    (lambda r: r.update(events=[]), "no_timed_events"),
    (lambda r: r["events"][0].update(end=-1), "invalid_record"),
    (lambda r: r.update(duration=-2), "invalid_record"),
    (lambda r: r.update(media="nope.mp4"), "media_missing"),
])
def test_bad_native_records_have_reasons(tmp_path: Path, mutate, reason):
    (tmp_path / "a.mp4").write_bytes(b"x")
    record = caption_record("teal", "a.mp4", 4.0)
    mutate(record)
    with pytest.raises(RecordError) as e:
        adapt(SourceRecord("f:1", record), "native", tmp_path)
    assert e.value.reason == reason


def test_asid_adapter_reads_sections_and_spans(tmp_path: Path):
    (tmp_path / "v.mp4").write_bytes(b"x")
    caption = ("Scene: a kitchen at night.\nActions:\n[00:00 - 00:02] A woman opens the fridge.\n"
               "[00:02 - 00:05] She pours milk.\nSpeech:\n[00:01 - 00:03] She says \"we are out of eggs\".\n"
               "Camera: static.")
    record = {"id": "asid-1", "videos": ["v.mp4"], "duration": 6.0,
              "messages": [{"role": "user", "content": "<video>Describe."}, {"role": "assistant", "content": caption}]}
    clip = adapt(SourceRecord("f:3", record), "asid", tmp_path)
    assert [(e.start, e.modality) for e in clip.events] == [(0.0, "visual"), (1.0, "audio"), (2.0, "visual")]
    assert clip.caption == caption and clip.source == "asid"


def test_avocado_adapter(tmp_path: Path):
    (tmp_path / "v.mp4").write_bytes(b"x")
    record = {"video_id": "av-9", "video_path": "v.mp4", "duration": 5.0,
              "caption": "[0.0s - 2.0s] A drummer counts in aloud. [2.0s - 5.0s] The band starts as lights flash."}
    clip = adapt(SourceRecord("f:1", record), "avocado", tmp_path)
    assert clip.id == "av-9" and [e.modality for e in clip.events] == ["audiovisual", "audiovisual"]


def test_ingest_drops_carry_file_and_line(tmp_path: Path, media_dir: Path):
    from .conftest import write_captions

    captions = write_captions(tmp_path / "c.jsonl", media_dir)
    cfg_path = write_config(tmp_path / "p.yaml", run_dir=tmp_path / "run", captions=captions, media_dir=media_dir,
                            urls=["http://127.0.0.1:9/v1"])
    import yaml

    cfg = parse_config(yaml.safe_load(cfg_path.read_text()), base=tmp_path)
    clips, drops, n = ingest_records(StageContext(cfg))
    assert n == 13 and len(clips) == 9
    assert {d.reason: d.id.rsplit(":", 1)[1] for d in drops} == {
        "invalid_json": "10", "duplicate_id": "11", "media_missing": "12", "invalid_record": "13"}
    late = next(d for d in drops if d.reason == "invalid_record")
    assert "outside the media duration" in late.detail and json.dumps(late.detail)


def test_time_prefixed_caption_lines_as_benchmark_caption_files_write_them():
    text = "0-10s: A man enters the kitchen.\n10–20 s: He fills a kettle.\n20 - 30 sec: The kettle whistles."
    assert parse_time_spans(text) == [(0.0, 10.0, "A man enters the kitchen."), (10.0, 20.0, "He fills a kettle."),
                                      (20.0, 30.0, "The kettle whistles.")]
    assert parse_time_spans("00:10-00:20: A dog barks. 00:20-00:25: It runs off.") == [
        (10.0, 20.0, "A dog barks."), (20.0, 25.0, "It runs off.")]
    assert parse_time_spans("[00:10-00:20] A dog barks.") == [(10.0, 20.0, "A dog barks.")]
    assert parse_time_spans("3-4 people enter at noon. The score was 2-1 at the end.") == []


@pytest.mark.parametrize("fmt, caption", [
    ("native", "0-10s: A man enters the kitchen.\n10–20 s: He fills a kettle and it whistles."),
    ("native", "[00:00-00:10] A man enters the kitchen.\n[00:10-00:20] He fills a kettle and it whistles."),
    ("avocado", "0-10s: A man enters the kitchen. 10–20 s: He fills a kettle and it whistles."),
])
def test_time_prefixed_captions_are_ingested_not_dropped(tmp_path: Path, media_dir: Path, fmt, caption):
    record = {"id": "bench-1", "duration": 20.0, "caption": caption}
    record.update({"media": "teal.mp4"} if fmt == "native" else {"video": "teal.mp4"})
    captions = tmp_path / "c.jsonl"
    captions.write_text(json.dumps(record) + "\n")
    cfg_path = write_config(tmp_path / "p.yaml", run_dir=tmp_path / "run", captions=captions, media_dir=media_dir,
                            urls=["http://127.0.0.1:9/v1"])
    import yaml

    raw = yaml.safe_load(cfg_path.read_text())
    raw["stages"]["ingest"]["inputs"][0]["format"] = fmt
    clips, drops, n = ingest_records(StageContext(parse_config(raw, base=tmp_path)))
    assert (n, drops) == (1, [])
    assert [(e.start, e.end, e.modality) for e in clips[0].events] == [(0.0, 10.0, "audiovisual"),
                                                                       (10.0, 20.0, "audiovisual")]
    assert clips[0].events[1].text == "He fills a kettle and it whistles."


def test_a_native_record_without_events_or_time_spans_is_still_no_timed_events(tmp_path: Path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    record = caption_record("teal", "a.mp4", 4.0)
    record.pop("events")
    with pytest.raises(RecordError) as e:
        adapt(SourceRecord("f:1", record), "native", tmp_path)
    assert e.value.reason == "no_timed_events"
