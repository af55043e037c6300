"""The bar chart of Fig. 1 (right): AV token attention ratio per task type, one bar per series.

A series is a run (LatentOmni vs. the Explicit Text CoT baseline, as in the paper) or a step group of one
run (latent vs. text steps). Drawn on matplotlib's Agg canvas, like :func:`latentomni.eval.compare.plot`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def plot_task_ratios(series: Mapping[str, Mapping[str, float | None]], path: str | Path, title: str,
                     ylabel: str = "AV token attention ratio (%)") -> Path:
    """Grouped bars: task types on x (in the first series' order, then any others), one bar per series;
    values are fractions and are shown in %. A missing value (no such steps) leaves a gap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups: list[str] = []
    for values in series.values():
        groups += [g for g in values if g not in groups]
    n_series = max(len(series), 1)
    width = 0.8 / n_series
    fig = Figure(figsize=(max(5.0, 1.1 * len(groups) * max(1.0, n_series / 2) + 2), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for k, (label, values) in enumerate(series.items()):
        xs = [i + (k - (n_series - 1) / 2) * width for i in range(len(groups))]
        ys = [100 * v if (v := values.get(g)) is not None else 0.0 for g in groups]
        bars = ax.bar(xs, ys, width, label=label)
        ax.bar_label(bars, labels=[f"{y:.1f}" if values.get(g) is not None else "" for g, y in zip(groups, ys,
                                                                                                   strict=True)],
                     fontsize=7)
    ax.set_xticks(range(len(groups)), groups, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path
