"""A Table-1-style comparison of evaluation runs: rows are runs, columns benchmarks, cells accuracy in %.

A run dir is one evaluation out dir (it holds results.json) or a folder of them, one per benchmark, e.g.::

    runs/latentomni/daily_omni/results.json
    runs/latentomni/worldsense/results.json

The best accuracy per column is bold, as in the paper's tables; a cell from a run that has not answered all
its selected questions carries a dagger, so a half-finished run is never mistaken for a result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentomni.eval.benchmarks import BENCHMARKS
from latentomni.eval.runner import RESULTS

INCOMPLETE = "\u2020"
EMPTY = "\u2013"


@dataclass
class Comparison:
    labels: list[str]
    benchmarks: list[str]  # registry names, in table order
    titles: dict[str, str]  # column header per benchmark
    results: list[dict[str, dict[str, Any]]]  # per run: benchmark -> results.json

    def accuracy(self, row: int, bench: str) -> float | None:
        """Accuracy in % of run ``row`` on ``bench``, None when the run has no such result."""
        res = self.results[row].get(bench)
        return None if res is None or res.get("accuracy") is None else 100.0 * res["accuracy"]


def load_run(path: str | Path) -> dict[str, dict[str, Any]]:
    """Benchmark name -> results.json of one run dir (an eval out dir or a folder of them)."""
    path = Path(path)
    files = [path / RESULTS] if (path / RESULTS).is_file() else sorted(path.glob(f"*/{RESULTS}"))
    if not files:
        raise FileNotFoundError(f"{path}: no {RESULTS} in it or in its sub-folders; is this an eval --out dir?")
    found: dict[str, dict[str, Any]] = {}
    for file in files:
        res = json.loads(file.read_text(encoding="utf-8"))
        name = res.get("benchmark") or file.parent.name
        if name in found:
            raise ValueError(f"{path}: two results for benchmark {name!r}; keep one per run dir")
        found[name] = res
    return found


def compare_runs(run_dirs: Sequence[str | Path], labels: Sequence[str] | None = None) -> Comparison:
    """Load ``run_dirs`` and line their benchmarks up in the registry's (the paper's) order."""
    if not run_dirs:
        raise ValueError("compare needs at least one run dir")
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"got {len(labels)} labels for {len(run_dirs)} run dirs")
    results = [load_run(d) for d in run_dirs]
    names = {n for r in results for n in r}
    order = [n for n in BENCHMARKS if n in names] + sorted(names - set(BENCHMARKS))
    titles = {n: BENCHMARKS[n].title if n in BENCHMARKS else _title(n, results) for n in order}
    return Comparison(list(labels or _default_labels(run_dirs)), order, titles, results)


def to_markdown(cmp: Comparison) -> str:
    """The comparison as a GitHub markdown table (accuracy %, one decimal, best per column bold)."""
    header = ["Run", *(cmp.titles[b] for b in cmp.benchmarks)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * len(cmp.benchmarks)]
    best = {b: _best(cmp, b) for b in cmp.benchmarks}
    incomplete = False
    for row, label in enumerate(cmp.labels):
        cells = [label]
        for b in cmp.benchmarks:
            acc = cmp.accuracy(row, b)
            if acc is None:
                cells.append(EMPTY)
                continue
            cell = f"{acc:.1f}"
            if best[b] is not None and round(acc, 1) == best[b]:
                cell = f"**{cell}**"
            if not cmp.results[row][b].get("complete", True):
                cell += INCOMPLETE
                incomplete = True
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    if incomplete:
        lines += ["", f"{INCOMPLETE} run not finished: accuracy over the questions answered so far."]
    return "\n".join(lines) + "\n"


def plot(cmp: Comparison, path: Path) -> Path:
    """Grouped bars (benchmarks on x, one bar per run), written with the Agg canvas so that no GUI backend
    or global matplotlib state is involved."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_runs, n_bench = len(cmp.labels), len(cmp.benchmarks)
    width = 0.8 / max(n_runs, 1)
    fig = Figure(figsize=(max(4.0, 1.6 * n_bench + 1.5), 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for row, label in enumerate(cmp.labels):
        xs = [i + (row - (n_runs - 1) / 2) * width for i in range(n_bench)]
        ys = [cmp.accuracy(row, b) or 0.0 for b in cmp.benchmarks]
        bars = ax.bar(xs, ys, width, label=label)
        ax.bar_label(bars, labels=[_bar_text(cmp.accuracy(row, b)) for b in cmp.benchmarks], fontsize=7)
    ax.set_xticks(range(n_bench), [cmp.titles[b] for b in cmp.benchmarks])
    ax.set_ylabel("Accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    return path


def write_comparison(
    run_dirs: Sequence[str | Path], out_dir: str | Path, labels: Sequence[str] | None = None
) -> tuple[str, Path, Path]:
    """Write comparison.md and comparison.png into ``out_dir``; returns (markdown, md path, png path)."""
    cmp = compare_runs(run_dirs, labels)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(cmp)
    md_path = out_dir / "comparison.md"
    md_path.write_text(markdown, encoding="utf-8")
    return markdown, md_path, plot(cmp, out_dir / "comparison.png")


def _best(cmp: Comparison, bench: str) -> float | None:
    values = [round(a, 1) for row in range(len(cmp.labels)) if (a := cmp.accuracy(row, bench)) is not None]
    return max(values) if len(values) > 1 else None


def _bar_text(acc: float | None) -> str:
    return EMPTY if acc is None else f"{acc:.1f}"


def _title(name: str, results: list[dict[str, dict[str, Any]]]) -> str:
    return next((r[name].get("title") for r in results if name in r and r[name].get("title")), name)


def _default_labels(run_dirs: Sequence[str | Path]) -> list[str]:
    """The run dir's name, or its last two path parts where names collide."""
    paths = [Path(d).resolve() for d in run_dirs]
    names = [p.name for p in paths]
    return [p.name if names.count(p.name) == 1 else f"{p.parent.name}/{p.name}" for p in paths]
