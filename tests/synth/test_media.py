"""Segment boundaries (pure) and cutting with PyAV."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import pytest

from latentomni.synth.media import MediaError, cut_segments, segment_bounds

from .conftest import CORRUPT, NO_AUDIO


@pytest.mark.parametrize("duration, kw, expected", [
    (4.0, {"length_s": 2.0}, [(0.0, 2.0), (2.0, 4.0)]),
    (5.0, {"length_s": 2.0}, [(0.0, 2.0), (2.0, 4.0), (4.0, 5.0)]),
    (4.5, {"length_s": 2.0}, [(0.0, 2.0), (2.0, 4.5)]),  # a 0.5 s tail joins its neighbour
    (1.5, {"length_s": 2.0}, [(0.0, 1.5)]),
    (10.0, {"length_s": 1.0, "max_segments": 4}, [(0.0, 2.5), (2.5, 5.0), (5.0, 7.5), (7.5, 10.0)]),
])
def test_fixed_bounds(duration, kw, expected):
    assert segment_bounds(duration, mode="fixed", **kw) == expected


def test_event_bounds_merge_short_and_split_long_pieces():
    bounds = segment_bounds(12.0, mode="events", min_length_s=1.0, max_length_s=4.0,
                            event_times=[0.5, 1.2, 3.0, 3.3, 11.9, 20.0])
    assert bounds == [(0.0, 1.2), (1.2, 3.0), (3.0, 6.0), (6.0, 9.0), (9.0, 12.0)]
    assert bounds[0][0] == 0.0 and bounds[-1][1] == 12.0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


def test_bounds_reject_nonsense():
    with pytest.raises(ValueError):
        segment_bounds(0.0)
    with pytest.raises(ValueError, match="unknown segment mode"):
        segment_bounds(3.0, mode="scenes")


def test_cut_writes_clip_with_audio_and_16k_wav(media_dir: Path, tmp_path: Path):
    bounds = [(0.0, 2.0), (2.0, 4.0)]
    segments = cut_segments(media_dir / "teal.mp4", bounds, tmp_path / "teal", audio_rate=16000)
    assert [(s.index, s.start, s.end) for s in segments] == [(1, 0.0, 2.0), (2, 2.0, 4.0)]
    for s in segments:
        with av.open(s.video) as c:
            assert {st.type for st in c.streams} == {"video", "audio"}
            assert sum(1 for _ in c.decode(video=0)) == 20  # 2 s at 10 fps
        with av.open(s.audio) as c:
            stream = c.streams.audio[0]
            assert stream.rate == 16000 and stream.channels == 1
            samples = sum(f.samples for f in c.decode(audio=0))
            assert abs(samples - 32000) <= 400
    mtime = Path(segments[0].video).stat().st_mtime_ns
    again = cut_segments(media_dir / "teal.mp4", bounds, tmp_path / "teal")
    assert again == segments and Path(again[0].video).stat().st_mtime_ns == mtime  # reused, not re-cut


@pytest.mark.parametrize("colour, reason", [(NO_AUDIO, "no_audio_track"), (CORRUPT, "corrupt_media")])
def test_unusable_media_raise_a_reason_and_leave_nothing(media_dir: Path, tmp_path: Path, colour, reason):
    with pytest.raises(MediaError) as e:
        cut_segments(media_dir / f"{colour}.mp4", [(0.0, 2.0), (2.0, 4.0)], tmp_path / colour)
    assert e.value.reason == reason
    assert not any(tmp_path.iterdir())


def test_window_past_the_end_is_an_empty_segment(media_dir: Path, tmp_path: Path):
    with pytest.raises(MediaError) as e:
        cut_segments(media_dir / "teal.mp4", [(0.0, 4.0), (4.0, 8.0)], tmp_path / "long")
    assert e.value.reason == "empty_segment"
