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
    lines += diagnostics_table(results)
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


def diagnostics_table(results: dict) -> list[str]:
    """Markdown lines: the latent diagnostics of every variant that has them (the latent variant, its
    ablations); none when no variant does."""
    rows = {n: r["diagnostics"] for n, r in results["variants"].items() if r.get("diagnostics")}
    if not rows:
        return []
    heads = [h for h, _ in DIAGNOSTIC_COLUMNS]
    return ["", f"Latent diagnostics on {results.get('diagnostics_samples', '?')} held-out samples with a cited "
                "window (own = the states decoding feeds back; value = text loss, nats/token, after the block "
                "with the slots holding anchors / own states / another segment's anchors / zeros):", "",
            "| variant | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|",
            *(f"| {n} | " + " | ".join(diagnostic_cells(d)) + " |" for n, d in rows.items())]


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


def _g(d: dict, name: str) -> float | None:
    v = d.get(f"latent/{name}")
    return None if v is None else float(v)


def _f(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


# (header, cell) per latent diagnostic of model.diagnostics (keys latent/<name>); results.json keeps them all.
DIAGNOSTIC_COLUMNS = [
    ("trigger rate", lambda d: _f(_g(d, "trigger_rate"))),
    ("fidelity cos own (teacher)", lambda d: f"{_f(_g(d, 'fidelity_cos'))} ({_f(_g(d, 'fidelity_cos_teacher'))})"),
    ("rel. sq. error own", lambda d: _f(_g(d, "fidelity_rse"))),
    ("retrieval (chance)", lambda d: f"{_f(_g(d, 'retrieval'))} ({_f(_g(d, 'retrieval_chance'))})"),
    ("trigger's retrieval", lambda d: _f(_g(d, "retrieval_trigger"))),
    ("value a / b / c / d", lambda d: " / ".join(_f(_g(d, f"value_{k}")) for k in ("anchors", "own", "other",
                                                                                    "zeros"))),
]


def diagnostic_cells(d: dict | None) -> list[str]:
    return [cell(d) if d else "—" for _, cell in DIAGNOSTIC_COLUMNS]


def render_sweep_table(results: dict) -> str:
    """Markdown: every swept run's validation accuracy (95% Wilson interval) and its latent diagnostics,
    grouped by (base, budget), best first; the best latent run of each group in bold."""
    runs = results["runs"]
    guess = results["blind_guess"]
    lines = [f"Validation split ({results['n_val']} questions of the training types on clips of neither the train "
             f"nor the test split); accuracy % [95% Wilson interval]; chance = {100 * results['chance']:.0f}%; "
             f"blind guess = {100 * guess['accuracy']:.1f}%. Diagnostics on {results['diagnostics_samples']} "
             "validation samples with a cited window: own = the states decoding feeds back (teacher: anchors at "
             "the slots); value = text loss, nats/token, after the block with the slots holding (a) the anchors, "
             "(b) the own states, (c) another segment's anchors, (d) zeros.", ""]
    head = ["run", "base", "steps", "val accuracy", "parse fail", "blocks/answer", *(h for h, _ in DIAGNOSTIC_COLUMNS),
            "train s"]
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["base"], r["budget"]), []).append(r)
    for group in groups.values():
        group.sort(key=lambda r: -r["val"]["accuracy"])
        latent = [r for r in group if r["latent_mode"]]
        best = latent[0]["id"] if latent else None
        for r in group:
            name = f"**{r['label']}**" if r["id"] == best else r["label"]
            cells = [name, r["base"], str(r["budget"]), _pct(r["val"]) + f" (n={r['val']['n']})",
                     f"{100 * r['val']['parse_failure_rate']:.1f}%", f"{r['val']['mean_latent_blocks']:.2f}",
                     *diagnostic_cells(r.get("diagnostics")), f"{r['timings']['train_s']:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Best latent run per base and budget (by validation accuracy; put its overrides into "
                  "configs/demo/latent.yaml, then run `make demo` for the test split):", ""]
    for (base, budget), group in groups.items():
        latent = [r for r in group if r["latent_mode"]]
        ref = [r for r in group if not r["latent_mode"]]
        if latent:
            vs = "; ".join(f"{r['label']} {_pct(r['val'])}" for r in ref)
            lines.append(f"- {base}, {budget} steps: {latent[0]['label']} {_pct(latent[0]['val'])}"
                         + (f" (no latents: {vs})" if vs else ""))
    lines += ["", "Overrides per run:", ""]
    lines += [f"- {r['label']} ({r['config']}): {', '.join(r['overrides']) or 'as configured'}"
              for r in dict((r["label"], r) for r in runs).values()]
    return "\n".join(lines)
