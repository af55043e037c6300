"""The demo's table and charts."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _pct(block: dict) -> str:
    lo, hi = block["ci95"]
    return f"{100 * block['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def render_table(results: dict) -> str:
    """Markdown: accuracy % with 95% intervals on held-out clips; per question type; the controls."""
    chance = results["chance"]
    guess = results["blind_guess"]
    rows = results["variants"]
    lines = [f"Held-out accuracy, % [95% Wilson interval]; chance = {100 * chance:.0f}%; blind guess (each type's "
             f"most frequent training letter, no media) = {100 * guess['accuracy']:.1f}%", "",
             "| variant | all held-out | unseen question types | seen types, new clips | parse failures | "
             "latent blocks/answer |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        a = r["all"]
        lines.append(f"| {name} | {_pct(a)} (n={a['n']}) | {_pct(r['unseen_types'])} | {_pct(r['seen_types'])} | "
                     f"{100 * a['parse_failure_rate']:.1f}% | {a['mean_latent_blocks']:.2f} |")
    types = sorted({t for r in rows.values() for t in r["all"]["by_type"]})
    names = list(rows)
    lines += ["", "Per question type (accuracy %, n):", "",
              "| question type | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for t in types:
        cells = []
        for n in names:
            b = rows[n]["all"]["by_type"].get(t)
            cells.append(f"{100 * b['accuracy']:.1f} ({b['n']})" if b else "-")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    c = results["controls"]
    best = rows[c["variant"]]["all"]
    lines += ["", f"Controls for the best variant ({c['variant']}), all held-out questions:", "",
              "| test-time input | accuracy % [95% CI] |", "|---|---|",
              f"| audio + video | {_pct(best)} |",
              f"| audio zeroed | {_pct(c['audio zeroed']['all'])} |",
              f"| video zeroed | {_pct(c['video zeroed']['all'])} |"]
    bar = max(chance, guess["accuracy"])
    verdict = "lies above" if best["ci95"][0] > bar else "does NOT lie above"
    lines += ["", f"The best variant's 95% interval {verdict} both chance ({100 * chance:.0f}%) and the blind "
                  f"guess ({100 * guess['accuracy']:.1f}%)."]
    return "\n".join(lines)


def plot_accuracy(results: dict, path: Path) -> None:
    rows = results["variants"]
    names = list(rows)
    acc = [100 * rows[n]["all"]["accuracy"] for n in names]
    err = [[100 * (rows[n]["all"]["accuracy"] - rows[n]["all"]["ci95"][0]) for n in names],
           [100 * (rows[n]["all"]["ci95"][1] - rows[n]["all"]["accuracy"]) for n in names]]
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(names)), 3.6))
    ax.bar(range(len(names)), acc, yerr=err, capsize=4, color=["#c0392b" if n == "latent" else "#7f8c8d"
                                                                  for n in names])
    ax.axhline(100 * results["chance"], ls="--", color="k", lw=1, label="chance")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("Synthetic AV world: accuracy with 95% CI")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, points in results["learning_curves"].items():
        ax.plot([p["step"] for p in points], [100 * p["accuracy"] for p in points], marker="o", label=name)
    ax.axhline(100 * results["chance"], ls="--", color="k", lw=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out probe accuracy (%)")
    ax.set_title("Learning curves")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
