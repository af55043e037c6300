"""Reading an attention row on the video and audio timelines (App. C heatmaps), and the figures."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from latentomni.analysis.charts import plot_task_ratios
from latentomni.analysis.heatmaps import (
    audio_token_mass,
    bin_audio,
    plot_audio_timeline,
    plot_top_frames,
    plot_video_timeline,
    top_frames,
    video_token_mass,
)
from latentomni.model.backbone import Qwen3Omni, Qwen25Omni

V, A = 7, 8


def _interleaved_prompt():
    """Two temporal grid cells of 2x2 merged tokens (grid (2, 4, 4) patches, merge 2) with 3 audio tokens
    after each cell, as audio-in-video interleaves them; text around. Row value = position / 100."""
    ids = torch.tensor([1, 2, V, V, V, V, A, A, A, V, V, V, V, A, A, A, 1])
    row = torch.arange(len(ids), dtype=torch.float32) / 100
    return ids, row


def test_video_tokens_fill_the_grid_time_major_then_raster():
    ids, row = _interleaved_prompt()
    mass = video_token_mass(row, ids, V, (2, 4, 4), 2)
    assert mass.shape == (2, 2, 2)
    np.testing.assert_allclose(mass[0], [[0.02, 0.03], [0.04, 0.05]])
    np.testing.assert_allclose(mass[1], [[0.09, 0.10], [0.11, 0.12]])
    with pytest.raises(ValueError, match="needs 12"):
        video_token_mass(row, ids, V, (3, 4, 4), 2)


def test_audio_tokens_in_order_and_half_second_bins():
    ids, row = _interleaved_prompt()
    np.testing.assert_allclose(audio_token_mass(row, ids, A), [0.06, 0.07, 0.08, 0.13, 0.14, 0.15])
    # Qwen2.5-Omni, 25 tokens per second: a 0.5 s bin holds 12.5 tokens -> tokens 0-12, 13-24, 25-37, 38-39
    q25 = Qwen25Omni(None)
    bins = bin_audio(np.ones(40), q25.audio_token_spans(40), bin_seconds=0.5)
    assert bins.tolist() == [13, 12, 13, 2]
    assert bin_audio(np.arange(50, dtype=float), q25.audio_token_spans(50), bin_seconds=1.0).tolist() == [
        sum(range(25)), sum(range(25, 50))]
    # a token that starts in one bin and ends in the next (token 12: 0.48-0.52 s) opens that bin, empty
    assert bin_audio(np.ones(13), q25.audio_token_spans(13), bin_seconds=0.5).tolist() == [13, 0]
    with pytest.raises(ValueError, match="40 audio tokens but 39 spans"):
        bin_audio(np.ones(40), q25.audio_token_spans(39))


def test_qwen3_audio_bins_follow_its_one_second_windows():
    """Qwen3-Omni: 13 tokens per 1-second window, 80 ms apart (the 13th cut at the window's end). A 0.5 s bin
    takes the tokens starting at 0, 0.08, ..., 0.48 (7) and the next those at 0.56, ..., 0.96 (6): a uniform
    25/s or 13/s rate would put them elsewhere."""
    q3 = Qwen3Omni(SimpleNamespace(audio_config=SimpleNamespace(n_window=50)))
    spans = q3.audio_token_spans(39)
    assert bin_audio(np.ones(39), spans, bin_seconds=0.5).tolist() == [7, 6] * 3
    assert bin_audio(np.ones(39), spans, bin_seconds=1.0).tolist() == [13, 13, 13]
    # 20 tokens: the last (1.48-1.56 s) reaches into a fourth bin, as a Qwen2.5 token does above
    assert bin_audio(np.ones(20), q3.audio_token_spans(20), bin_seconds=0.5).tolist() == [7, 6, 7, 0]


def test_top_frames_by_total_mass_ties_to_the_earlier():
    mass = np.array([[[0.1, 0.1]], [[0.3, 0.0]], [[0.0, 0.2]], [[0.05, 0.0]]])
    assert top_frames(mass, 3) == [1, 0, 2]
    assert top_frames(mass, 0) == []


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    mass = rng.random((4, 2, 2)) / 100
    assert plot_video_timeline(mass, 1.0, tmp_path / "v.png", "video").stat().st_size > 1000
    assert plot_video_timeline(np.zeros((4, 2, 2)), 1.0, tmp_path / "z.png", "all zero", spatial=False).is_file()
    assert plot_audio_timeline(rng.random(100) / 100, Qwen25Omni(None).audio_token_spans(100), tmp_path / "a.png",
                               "audio").stat().st_size > 1000
    q3 = Qwen3Omni(SimpleNamespace(audio_config=SimpleNamespace(n_window=50)))
    assert plot_audio_timeline(rng.random(30) / 100, q3.audio_token_spans(30), tmp_path / "a3.png",
                               "audio").stat().st_size > 1000
    frames = rng.integers(0, 255, (8, 56, 56, 3), dtype=np.uint8)
    assert plot_top_frames(frames, mass, 1.0, 2, tmp_path / "f.png", "top").stat().st_size > 1000
    series = {"latent steps": {"Inference": 0.6, "Reasoning": None}, "text steps": {"Inference": 0.2}}
    assert plot_task_ratios(series, tmp_path / "bars.png", "fig 1").stat().st_size > 1000
