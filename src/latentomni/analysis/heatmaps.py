"""Attention heatmaps on the media timelines (paper App. C, Figs. 13-15; Fig. 1 left).

The input is one mean attention row over the prompt (:meth:`AttentionTrace.prompt_attention`: the rows of a
group of decoding steps -- the latent steps, or the answer's text steps -- averaged over heads, layers and
steps). Reading it on the media needs only the token layout both backbone families share:

* video tokens come in time-major order (temporal grid index, then merged patches in raster order), whether
  or not audio is interleaved with them (Qwen2.5-Omni in 2-second chunks, Qwen3-Omni token by token);
  temporal index ``t`` covers ``[t, t+1) * second_per_grid`` seconds and ``temporal_patch_size`` sampled frames;
* audio tokens come in time order; when each one sounds is the backbone's fact
  (:meth:`~latentomni.model.backbone.Backbone.audio_token_spans`, via
  :meth:`~latentomni.analysis.attention.AttentionTrace.audio_token_spans`): one per 40 ms for Qwen2.5-Omni,
  13 per 1-second window (80 ms apart, the last cut at the window's end) for Qwen3-Omni.

So the n-th video token of the prompt is cell ``(t, y, x)`` of the merged grid and the n-th audio token
covers the n-th span. Figures are drawn on matplotlib's Agg canvas (no GUI backend, no global state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

CMAP = "inferno"


# -- attention on the timelines (pure) ----------------------------------------------------------------
def video_token_mass(prompt_row: torch.Tensor, prompt_ids: torch.Tensor, video_token_id: int,
                     grid_thw: Sequence[int] | torch.Tensor, spatial_merge_size: int) -> np.ndarray:
    """(T, H', W') attention mass of each merged video token, laid out as the video's temporal x spatial grid
    (H' = h / merge, W' = w / merge for a ``grid_thw`` of (t, h, w) patches)."""
    t, h, w = (int(x) for x in grid_thw)
    hh, ww = h // spatial_merge_size, w // spatial_merge_size
    mass = prompt_row[prompt_ids == video_token_id].float().cpu().numpy()
    if mass.size != t * hh * ww:
        raise ValueError(f"the prompt holds {mass.size} video tokens but grid {(t, h, w)} with merge "
                         f"{spatial_merge_size} needs {t * hh * ww}; pass the grid of the prompt's own video")
    return mass.reshape(t, hh, ww)


def audio_token_mass(prompt_row: torch.Tensor, prompt_ids: torch.Tensor, audio_token_id: int) -> np.ndarray:
    """(n_audio,) attention mass of each audio token, in time order (their seconds: the backbone's spans)."""
    return prompt_row[prompt_ids == audio_token_id].float().cpu().numpy()


def bin_audio(mass: np.ndarray, spans: tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor],
              bin_seconds: float = 0.5) -> np.ndarray:
    """Sum per-token audio mass into bins of ``bin_seconds`` by each token's start second; ``spans`` are the
    tokens' (start, end) seconds (the backbone's), and the bins reach the last token's end (the last bin may
    be partial)."""
    if bin_seconds <= 0:
        raise ValueError(f"bin_seconds must be > 0, got {bin_seconds}")
    if not mass.size:
        return mass
    starts, ends = (np.asarray(x, dtype=np.float64) for x in spans)
    if starts.shape != mass.shape:
        raise ValueError(f"{mass.size} audio tokens but {starts.size} spans; pass the spans of the prompt's audio")
    index = (starts / bin_seconds + 1e-9).astype(int)
    return np.bincount(index, weights=mass, minlength=int(np.ceil(ends[-1] / bin_seconds - 1e-9)))


def top_frames(video_mass: np.ndarray, k: int) -> list[int]:
    """Temporal indices of the ``k`` temporal grid cells with the most mass, highest first (ties: earlier)."""
    per_frame = video_mass.reshape(video_mass.shape[0], -1).sum(1)
    order = sorted(range(len(per_frame)), key=lambda i: (-per_frame[i], i))
    return order[: max(k, 0)]


# -- figures -----------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _scale(values: np.ndarray) -> dict[str, float]:
    """Colour limits from the map's own min to max: attention spreads thinly over thousands of media tokens,
    so on a 0-based scale every map looks flat; the colour bar keeps the absolute values readable. A
    constant map (e.g. all zero: text steps under ``through_latents``) gets a tiny range and one colour."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    return {"vmin": lo, "vmax": hi if hi > lo else lo + 1e-12}


def plot_video_timeline(mass: np.ndarray, second_per_grid: float, path: Path, title: str,
                        spatial: bool = True) -> Path:
    """Frames x time: the mass per temporal grid index (bars), and above it, when ``spatial``, each index's
    merged-token grid side by side on the same time axis (one colour scale for all frames)."""
    t, hh, ww = mass.shape
    duration = t * second_per_grid
    fig = _figure(max(6.0, min(18.0, 0.5 * t + 3)), 4.2 if spatial else 2.6)
    axes = fig.subplots(2 if spatial else 1, 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [1.3, 1] if spatial else [1]})[:, 0]
    if spatial:
        strip = np.full((hh, t * (ww + 1) - 1), np.nan)  # a NaN column between frames
        for i in range(t):
            strip[:, i * (ww + 1): i * (ww + 1) + ww] = mass[i]
        im = axes[0].imshow(strip, cmap=CMAP, **_scale(mass), aspect="auto", interpolation="nearest",
                            extent=(0, duration, hh, 0))
        axes[0].set_yticks([])
        axes[0].set_ylabel("tokens")
        fig.colorbar(im, ax=axes[0], label="mass", fraction=0.03)
    per_frame = mass.reshape(t, -1).sum(1)
    starts = np.arange(t) * second_per_grid
    axes[-1].bar(starts, per_frame, width=second_per_grid, align="edge",
                 color=_colours(per_frame), edgecolor="grey", linewidth=0.3)
    axes[-1].set_xlim(0, duration)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_ylabel("mass per frame")
    axes[0].set_title(title, fontsize=9)
    return _save(fig, path)


def plot_audio_timeline(mass: np.ndarray, spans: tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor],
                        path: Path, title: str, bin_seconds: float = 0.5) -> Path:
    """Mass per audio token (a step line over each token's span: 40 ms for Qwen2.5-Omni, 80 ms for Qwen3-Omni)
    over a strip of ``bin_seconds`` bins. The spans of one track are contiguous, so the step edges are the
    starts and the last end."""
    starts, ends = (np.asarray(x, dtype=np.float64) for x in spans)
    times = np.append(starts, ends[-1])
    bins = bin_audio(mass, (starts, ends), bin_seconds)
    fig = _figure(max(6.0, min(18.0, times[-1] + 3)), 3.4)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    top.stairs(mass, times, fill=True, color="tab:blue", alpha=0.7)
    top.set_ylabel("mass per token")
    top.set_title(title, fontsize=9)
    im = bottom.imshow(bins[None, :], cmap=CMAP, **_scale(bins), aspect="auto", interpolation="nearest",
                       extent=(0, bins.size * bin_seconds, 1, 0))
    bottom.set_yticks([])
    bottom.set_ylabel(f"{bin_seconds:g} s")
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0, times[-1])
    fig.colorbar(im, ax=[top, bottom], label="mass per bin", fraction=0.03)
    return _save(fig, path)


def plot_top_frames(frames: np.ndarray, mass: np.ndarray, second_per_grid: float, k: int, path: Path,
                    title: str, alpha: float = 0.55) -> Path:
    """The ``k`` temporal grid cells with the most mass: their first sampled frame with the per-token mass
    stretched over it (one colour scale for all panels, so they compare).

    ``frames`` are the sampled frames (N, H, W, 3) the prompt's video was built from (same fps, frame cap
    and pixel budget); each temporal index covers ``N // T`` consecutive frames.
    """
    t = mass.shape[0]
    per_grid = max(frames.shape[0] // t, 1)
    picks = top_frames(mass, k)
    per_frame = mass.reshape(t, -1).sum(1)
    fig = _figure(2.6 * max(len(picks), 1) + 0.8, 3.0)
    axes = np.atleast_1d(fig.subplots(1, max(len(picks), 1)))
    scale = _scale(mass)
    im = None
    for ax, i in zip(axes, picks, strict=False):
        frame = frames[min(i * per_grid, frames.shape[0] - 1)]
        height, width = frame.shape[:2]
        ax.imshow(frame, extent=(0, width, height, 0))
        im = ax.imshow(mass[i], cmap=CMAP, **scale, alpha=alpha, interpolation="bilinear",
                       extent=(0, width, height, 0))
        ax.set_title(f"{i * second_per_grid:.1f}-{(i + 1) * second_per_grid:.1f} s  ({100 * per_frame[i]:.1f}%)",
                     fontsize=8)
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="mass per token", fraction=0.03)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _colours(values: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    return colormaps[CMAP](Normalize(**_scale(values))(values))


# -- everything for one trace ---------------------------------------------------------------------------
def write_heatmaps(trace, out_dir: str | Path, video: str | Path | None = None, media=None, layers=None,
                   step_groups: Sequence[str] = ("latent", "text"), top_k: int = 3, spatial: bool = True,
                   bin_seconds: float = 0.5) -> list[Path]:
    """Video timeline, audio timeline and top-frame overlay PNGs for each step group of an
    :class:`~latentomni.analysis.attention.AttentionTrace` that has such steps.

    ``video`` and ``media`` (the :class:`~latentomni.data.collate.MediaSettings` the prompt was encoded
    with) are needed for the overlay: the frames are decoded again at the same fps, frame cap and pixel
    budget, so frame ``i`` here is frame ``i`` of the prompt. Files: ``video_<group>.png``,
    ``audio_<group>.png``, ``top_frames_<group>.png``.
    """
    from latentomni.analysis.attention import group_mask
    from latentomni.data.features import MediaSettings
    from latentomni.data.media import decode_video

    out_dir = Path(out_dir)
    ids = trace.prompt_ids[0]
    layer_text = "all layers" if layers is None else f"layer {layers}"
    frames = None
    written: list[Path] = []
    for group in step_groups:
        row = trace.prompt_attention(group, layers)
        if row is None:
            continue
        label = f"{group} steps (n={int(group_mask(trace.step_kinds[0], group).sum())}), {layer_text}"
        if trace.video_grid_thw is not None and trace.second_per_grid is not None:
            vmass = video_token_mass(row, ids, trace.video_token_id, trace.video_grid_thw, trace.spatial_merge_size)
            written.append(plot_video_timeline(vmass, trace.second_per_grid, out_dir / f"video_{group}.png",
                                               f"attention on the video: {label}", spatial=spatial))
            if video is not None and top_k > 0:
                if frames is None:
                    m = media or MediaSettings()
                    frames = decode_video(video, m.fps, m.max_frames, m.max_pixels).frames
                written.append(plot_top_frames(frames, vmass, trace.second_per_grid, top_k,
                                               out_dir / f"top_frames_{group}.png", f"top frames: {label}"))
        amass = audio_token_mass(row, ids, trace.audio_token_id)
        if amass.size:
            written.append(plot_audio_timeline(amass, trace.audio_token_spans(), out_dir / f"audio_{group}.png",
                                               f"attention on the audio: {label}", bin_seconds))
    return written
