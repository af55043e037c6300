"""PyAV decoding and the per-sample error paths."""

import numpy as np
import pytest

from latentomni.data.media import MediaError, decode_audio, decode_video, probe_duration
from lo_testing import SEGMENT_COLOURS, encode_batch, make_sample


def test_video_frames_are_sampled_at_fps_within_the_pixel_budget(clip_dir):
    clip = decode_video(clip_dir / "clip4.mp4", fps=2.0, max_pixels=56 * 56)
    assert clip.frames.shape == (8, 56, 56, 3) and clip.fps == pytest.approx(2.0)
    # frame 3 (t = 1.75 s) lies in segment 1: its square has that segment's colour
    centre = clip.frames[3, 28, 28].astype(int)
    assert np.abs(centre - np.array(SEGMENT_COLOURS[1])).max() < 40


def test_max_frames_spreads_frames_over_the_clip(clip_dir):
    clip = decode_video(clip_dir / "clip4.mp4", fps=8.0, max_frames=4, max_pixels=56 * 56)
    assert clip.frames.shape[0] == 4 and clip.fps == pytest.approx(1.0)


def test_audio_is_16k_mono_and_windowed(clip_dir):
    full = decode_audio(clip_dir / "clip4.mp4")
    assert abs(len(full) - 64000) < 1200
    part = decode_audio(clip_dir / "clip4.mp4", start=1.0, end=2.0)
    assert len(part) == 16000
    spectrum = np.abs(np.fft.rfft(part))
    assert abs(np.argmax(spectrum) * 16000 / len(part) - 660.0) < 5
    assert probe_duration(clip_dir / "clip4.mp4") == pytest.approx(4.0, abs=0.1)


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda d: decode_audio(d / "silent.mp4"), "no audio track"),
        (lambda d: decode_video(d / "corrupt.mp4"), "cannot open media|corrupt"),
        (lambda d: decode_video(d / "missing.mp4"), "file not found"),
        (lambda d: decode_video(d / "clip4.mp4", start=9.0, end=10.0), "outside the video"),
    ],
)
def test_bad_media_raises_a_clear_media_error(clip_dir, call, needle):
    with pytest.raises(MediaError, match=needle):
        call(clip_dir)


def test_encoder_errors_name_the_sample_and_the_window(model, clip_dir):
    with pytest.raises(MediaError, match="no audio track"):
        encode_batch(model, [make_sample("x", video="silent.mp4", blocks=((0.0, 1.0),))], clip_dir)
    with pytest.raises(MediaError, match=r"sample y: latent window \[5.0, 6.0\)"):
        encode_batch(model, [make_sample("y", blocks=((5.0, 6.0),))], clip_dir)
    # vision-only protocol: a silent video is fine when audio is not used
    batch = encode_batch(model, [make_sample("z", video="silent.mp4", blocks=())], clip_dir,
                         for_generation=True, use_audio_in_video=False)
    assert "input_features" not in batch and batch["video_grid_thw"].shape == (1, 3)


def test_variants_share_the_prompt_and_differ_in_the_answer(model, clip_dir):
    s = [make_sample("v", blocks=((0.0, 2.0),))]
    tok = model.processor.tokenizer
    texts = {}
    for v in ("latent", "text_cot", "vanilla"):
        b = encode_batch(model, s, clip_dir, variant=v)
        texts[v] = tok.decode(b["input_ids"][0][b["labels"][0] != -100])
    assert "<Unified_Latent>" in texts["latent"] and "<Unified_Latent>" not in texts["text_cot"]
    assert "The tone matters. It is blue." in texts["text_cot"]
    assert texts["vanilla"] == "\\boxed{B}<|im_end|>"


def test_a_window_stops_decoding_at_its_end_and_matches_the_full_decode(clip_dir):
    full = decode_audio(clip_dir / "clip4.mp4")
    for start, end in ((0.0, 0.5), (1.25, 2.5), (3.0, None)):
        part = decode_audio(clip_dir / "clip4.mp4", start=start, end=end)
        stop = round(end * 16000) if end is not None else len(full)
        assert np.array_equal(part, full[round(start * 16000):stop])


def test_probe_media_reports_the_streams_a_file_holds(clip_dir, tmp_path):
    from latentomni.data.media import probe_media
    from latentomni.data.render import render_av, tone

    both = probe_media(clip_dir / "clip4.mp4")
    assert both.has_video and both.has_audio and both.video_duration == pytest.approx(4.0, abs=0.1)
    silent = probe_media(clip_dir / "silent.mp4")
    assert silent.has_video and not silent.has_audio
    audio_only = render_av(tmp_path / "speech.mp4", None, 4, tone(440.0, 2.0, 44100), 44100)
    info = probe_media(audio_only)
    assert not info.has_video and info.has_audio and info.audio_duration == pytest.approx(2.0, abs=0.1)
    assert probe_duration(audio_only) == pytest.approx(2.0, abs=0.1)  # duration falls back to the audio stream
