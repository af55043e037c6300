"""The ``latentomni analyze`` command: the AV token attention ratio (Fig. 1) and attention heatmaps (App. C).

    latentomni analyze attention --model DIR --video CLIP --question TEXT [--options "A. x" "B. y" ...]
                                 [--layer L | --all-layers] [--force-latent [STEP]] [--out DIR] [--set K=V ...]
    latentomni analyze attention --model DIR --benchmark NAME --annotations PATH --media-root DIR
                                 [--limit N] [--group-by KEY] [--layer L | --all-layers] [--out DIR]
    latentomni analyze compare RUN_DIR... [--labels NAME...] [--steps all|latent|text] [--out DIR]

The first form generates for one question and writes ratio.json (the ratio per step group, per layer and
per step) and heatmap PNGs (video timeline, audio timeline, top frames) for the latent and the text steps.
The second iterates a benchmark through its evaluation adapter and writes task_ratios.json, a bar chart
task_ratios.png (Fig. 1 right for one model) and samples.jsonl. The third puts the runs of several models
side by side per task type (Fig. 1 right: LatentOmni vs. the Explicit Text CoT baseline).

Predictor settings (fps, max_pixels, max_new_tokens, attention_flow, ...) come from ``--config``/``--set`` as
for ``latentomni eval``; attention is always eager. ``--force-latent`` forces one ``<Unified_Latent>`` at
generation step STEP (default 1): an untrained model never emits the trigger itself, and without latent steps
there is nothing to draw; the latent states are still the model's own. Steps count generated tokens from 0,
so the default lets one text token come first. It also works on a checkpoint with ``latent_mode`` off (a base
such as the committed tiny base, or a text baseline): latent decoding is switched on for the analysis with
the checkpoint's own K / Kv / Ka, and ``settings.latent_mode_forced`` in the output says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RATIO_FILE = "ratio.json"
TASK_RATIOS = "task_ratios.json"
TASK_CHART = "task_ratios.png"
SAMPLES = "samples.jsonl"
# Meta keys that name a question's task type, in preference order, for --group-by's default.
TASK_KEYS = ("task_type", "question_type")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``analyze`` (sub-commands ``attention`` and ``compare``) on the ``latentomni`` parser."""
    p = subparsers.add_parser("analyze", help="attention analysis: AV token attention ratio and heatmaps",
                              description=__doc__.split("\n\n")[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="analyze_command", required=True)

    a = sub.add_parser("attention", help="AV token attention ratio and heatmaps, for one clip or a benchmark")
    a.add_argument("--model", required=True,
                   help="a LatentOmni checkpoint directory (with --force-latent also one with latent_mode off)")
    source = a.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", type=Path, help="one clip to analyse (with --question)")
    source.add_argument("--benchmark", help="a benchmark to analyse per task type (with --annotations, --media-root)")
    a.add_argument("--question", help="the question about --video")
    a.add_argument("--options", nargs="+", help='options, e.g. "A. red" "B. blue"')
    a.add_argument("--audio", type=Path, help="a separate audio file for --video (default: the video's own track)")
    a.add_argument("--no-audio", action="store_true", help="vision only (VideoMME's protocol)")
    a.add_argument("--annotations", type=Path, help="the benchmark's official annotation file")
    a.add_argument("--media-root", type=Path, help="folder holding the benchmark's videos")
    a.add_argument("--limit", type=int, help="analyse only the first N questions (file order)")
    a.add_argument("--group-by", help="EvalItem.meta key to group by (default: the benchmark's task type)")
    layers = a.add_mutually_exclusive_group()
    layers.add_argument("--layer", type=int, help="read one layer (negative counts from the top)")
    layers.add_argument("--all-layers", action="store_true", help="average all layers (the default)")
    a.add_argument("--force-latent", type=int, nargs="?", const=1, metavar="STEP",
                   help="force one <Unified_Latent> as generated token STEP (from 0; default 1); for untrained "
                        "models and checkpoints with latent_mode off, whose latent decoding it switches on")
    a.add_argument("--top-k", type=int, default=3, help="frames in the top-frames overlay (default 3)")
    a.add_argument("--no-spatial", action="store_true", help="video timeline per frame only, no per-token grids")
    a.add_argument("--out", type=Path, help="output dir (default runs/analysis/<model name>/<clip or benchmark>)")
    a.add_argument("--config", type=Path, help="YAML mapping of predictor settings")
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="predictor setting, e.g. --set max_pixels=3136")
    a.set_defaults(func=attention_command)

    c = sub.add_parser("compare", help="AV token attention ratio per task type of several runs (Fig. 1 right)")
    c.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help=f"dirs holding {TASK_RATIOS}")
    c.add_argument("--labels", nargs="+", help="one label per RUN_DIR (default: the dir names)")
    c.add_argument("--steps", choices=("all", "latent", "text"), default="all", help="step group (default all)")
    c.add_argument("--out", type=Path, default=Path("."), help="where attention_comparison.png/.json go")
    c.set_defaults(func=compare_command)
    return p


# -- attention ----------------------------------------------------------------------------------------
def attention_command(args: argparse.Namespace) -> int:
    from latentomni.data.media import MediaError
    from latentomni.eval.annotations import AnnotationError
    from latentomni.inference.settings import UnknownSettingError, predictor_settings

    error = _check_args(args)
    if error:
        print(f"latentomni analyze attention: error: {error}", file=sys.stderr)
        return 2
    try:
        settings = predictor_settings(args.config, args.overrides)
        layers = args.layer
        if args.benchmark is not None:
            return _benchmark(args, settings, layers)
        return _single(args, settings, layers)
    except UnknownSettingError as e:
        print(f"latentomni analyze attention: error: {e.where(args.config, args.overrides)}", file=sys.stderr)
        return 2
    except (AnnotationError, MediaError, KeyError, ValueError, OSError) as e:
        print(f"latentomni analyze attention: error: {e}", file=sys.stderr)
        return 1


def _check_args(args: argparse.Namespace) -> str | None:
    if args.video is not None:
        if not args.question:
            return "--video needs --question"
        if args.annotations or args.media_root or args.limit is not None or args.group_by:
            return "--annotations, --media-root, --limit and --group-by go with --benchmark, not --video"
    else:
        missing = [f for f, v in (("--annotations", args.annotations), ("--media-root", args.media_root)) if v is None]
        if missing:
            return f"--benchmark needs {' and '.join(missing)}"
        if args.question or args.options or args.audio:
            return "--question, --options and --audio go with --video, not --benchmark"
    if args.limit is not None and args.limit < 0:
        return f"--limit must be >= 0, got {args.limit}"
    return None


def _predictor(model: str, settings: dict[str, Any], force_latent: int | None = None):
    """The predictor with eager attention, and whether latent mode was switched on for it. With
    ``force_latent`` a checkpoint whose ``latent_mode`` is off decodes in latent mode (its own K / Kv / Ka):
    a forced block needs latent decoding to have anything to show, and a base model is exactly what
    --force-latent is for."""
    from latentomni.config import LatentConfig
    from latentomni.inference.predictor import LatentOmniPredictor
    from latentomni.inference.settings import check_settings

    check_settings(LatentOmniPredictor, settings)
    pred = LatentOmniPredictor(model, **{**settings, "attn_implementation": "eager"})
    forced = False
    latent = pred.model.latent
    if force_latent is not None and not latent.latent_mode:
        try:
            pred.model.latent = LatentConfig.model_validate({**latent.model_dump(), "latent_mode": True})
        except ValueError as e:
            raise ValueError(f"--force-latent: {model} has latent_mode off and latent settings that cannot decode "
                             f"a latent block ({' '.join(str(e).split())})") from None
        forced = True
    if force_latent is not None and pred.gen.max_latent_blocks < 1:
        raise ValueError("--force-latent needs max_latent_blocks >= 1 (--set max_latent_blocks=1)")
    return pred, forced


def _prompt_batch(pred, question: str, video: Path | None, audio: Path | None, use_audio: bool, sid: str = "q"):
    """Encode one prompt exactly as the evaluator does; returns (batch on the model's device, note)."""
    from latentomni.data.collate import batch_to, collate

    enc, _, note = pred.encode(question, video, audio, use_audio, sid)
    batch = collate([enc], pred.model.processor.tokenizer.pad_token_id, padding_side="left")
    return batch_to(batch, pred.model.device), note


def _run_settings(pred, args: argparse.Namespace, latent_mode_forced: bool) -> dict[str, Any]:
    return {"predictor": json.loads(json.dumps(pred.settings(), default=str)),
            "layers": "all" if args.layer is None else args.layer, "force_latent_at": args.force_latent,
            "latent_mode_forced": latent_mode_forced}


def _single(args: argparse.Namespace, settings: dict[str, Any], layers: int | None) -> int:
    from latentomni.analysis.attention import STEP_GROUPS, trace_attention
    from latentomni.analysis.heatmaps import write_heatmaps
    from latentomni.data.questions import EvalItem, render_question

    question = args.question
    if args.options:
        question = render_question(EvalItem("cli", "q", args.question, list(args.options), "", args.video,
                                            args.audio, not args.no_audio))
    out = args.out or Path("runs") / "analysis" / Path(args.model).name / args.video.stem
    pred, forced = _predictor(args.model, settings, args.force_latent)
    _check_layer(pred, layers)
    batch, note = _prompt_batch(pred, question, args.video, args.audio, not args.no_audio)
    trace = trace_attention(pred.model, batch, pred.gen, force_latent_at=args.force_latent)
    out.mkdir(parents=True, exist_ok=True)
    pngs = write_heatmaps(trace, out, args.video, pred.media, layers, top_k=args.top_k, spatial=not args.no_spatial)
    report = {
        "video": str(args.video), "question": question, "reply": trace.text, "n_latent_blocks": trace.num_blocks,
        **({"note": note} if note else {}),
        "ratios": _ratios_json(trace.ratios(layers)),
        "per_layer": [{"layer": i, **_ratios_json(trace.ratios(i))} for i in range(trace.n_layers)],
        "steps": _steps_json(trace, pred.model.processor.tokenizer, layers),
        "heatmaps": [p.name for p in pngs], "step_groups": list(STEP_GROUPS),
        "settings": _run_settings(pred, args, forced),
    }
    _write_json(out / RATIO_FILE, report)
    for group in STEP_GROUPS:
        print(_summary_line(group, report["ratios"]))
    print(f"wrote {out / RATIO_FILE} and {len(pngs)} heatmaps in {out}")
    return 0


def _check_layer(pred, layers: int | None) -> None:
    """Fail on a bad --layer before generating."""
    from latentomni.analysis.attention import select_layers

    select_layers(pred.model.config.text_config.num_hidden_layers, layers)


def _steps_json(trace, tokenizer, layers: int | None) -> list[dict[str, Any]]:
    """One entry per decoding step: what it fed, its kind, and its masses (the curve behind the means)."""
    from latentomni.analysis.attention import INACTIVE, KEY_KIND_NAMES, LATENT, LATENT_STEP

    kind_name = {LATENT_STEP: "latent", INACTIVE: "inactive"}
    fed_kinds = trace.key_kinds[0, trace.prompt_length:]
    rows = []
    for s, (tok, kind, m) in enumerate(zip(trace.fed_ids[0].tolist(), trace.step_kinds[0].tolist(),
                                           trace.step_masses(layers), strict=True)):
        fed = "<latent state>" if int(fed_kinds[s]) == LATENT else tokenizer.decode([tok])
        masses = {name: round(float(v), 6) for name, v in zip(KEY_KIND_NAMES, m, strict=True)}
        rows.append({"step": s, "fed": fed, "kind": kind_name.get(kind, "text"),
                     "av": round(masses["video"] + masses["audio"], 6), **masses})
    return rows


def _benchmark(args: argparse.Namespace, settings: dict[str, Any], layers: int | None) -> int:
    from latentomni.analysis.attention import STEP_GROUPS, aggregate, trace_attention
    from latentomni.analysis.charts import plot_task_ratios
    from latentomni.data.media import MediaError
    from latentomni.data.questions import LABEL_SEP, render_question
    from latentomni.eval.benchmarks import get_benchmark
    from latentomni.eval.scoring import judge

    bench = get_benchmark(args.benchmark)
    if not args.media_root.is_dir():
        raise ValueError(f"--media-root {args.media_root} is not a directory")
    items = bench.load(args.annotations, args.media_root)[: args.limit]
    key = args.group_by or default_group_key(bench)
    order = next((b.order for b in bench.breakdowns if b.key == key), ())
    out = args.out or Path("runs") / "analysis" / Path(args.model).name / bench.name
    pred, forced = _predictor(args.model, settings, args.force_latent)
    _check_layer(pred, layers)
    out.mkdir(parents=True, exist_ok=True)
    ratios, skipped = [], {}
    with (out / SAMPLES).open("w", encoding="utf-8") as f:
        for item in items:
            if item.missing_media():
                skipped[item.qid] = f"missing media: {', '.join(map(str, item.missing_media()))}"
                continue
            try:  # a bad clip skips its question, as in evaluation
                batch, note = _prompt_batch(pred, render_question(item), item.video, item.audio, item.use_audio,
                                            item.qid)
            except (MediaError, ValueError) as e:
                skipped[item.qid] = str(e)
                continue
            trace = trace_attention(pred.model, batch, pred.gen, force_latent_at=args.force_latent)
            groups = (item.meta.get(key) or "unknown").split(LABEL_SEP)
            sample = trace.ratios(layers)
            ratios.append((groups, sample))
            record = {"qid": item.qid, "groups": groups, **judge(item, trace.text), "reply": trace.text,
                      "n_latent_blocks": trace.num_blocks, "ratios": _ratios_json(sample)}
            if note:
                record["note"] = note
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
    table = {g: _ratios_json(r) for g, r in aggregate(ratios, order).items()}
    _write_json(out / TASK_RATIOS, {"benchmark": bench.name, "title": bench.title, "group_by": key,
                                    "n_samples": len(ratios), "n_skipped": len(skipped), "skipped": skipped,
                                    "groups": table, "settings": _run_settings(pred, args, forced)})
    series = {f"{g} steps": {name: (r[g] or {}).get("av") for name, r in table.items()} for g in STEP_GROUPS}
    plot_task_ratios(series, out / TASK_CHART, f"{bench.title}: AV token attention ratio by {key} "
                                               f"({'all layers' if layers is None else f'layer {layers}'})")
    for name, r in table.items():
        print(f"{name}: " + ", ".join(f"{g} {_pct(r[g])}" for g in STEP_GROUPS))
    print(f"wrote {out / TASK_RATIOS}, {out / TASK_CHART} and {out / SAMPLES} ({len(skipped)} skipped)")
    return 0


def default_group_key(bench) -> str:
    """The benchmark's task-type key (``task_type`` or ``question_type``), else its first breakdown."""
    keys = [b.key for b in bench.breakdowns]
    return next((k for k in TASK_KEYS if k in keys), keys[0] if keys else "task_type")


# -- compare ------------------------------------------------------------------------------------------
def compare_command(args: argparse.Namespace) -> int:
    from latentomni.analysis.charts import plot_task_ratios

    if args.labels is not None and len(args.labels) != len(args.runs):
        print(f"latentomni analyze compare: error: {len(args.labels)} labels for {len(args.runs)} runs",
              file=sys.stderr)
        return 2
    series: dict[str, dict[str, float | None]] = {}
    titles = set()
    for i, run in enumerate(args.runs):
        path = run / TASK_RATIOS if run.is_dir() else run
        if not path.is_file():
            print(f"latentomni analyze compare: error: {path} not found; is {run} an analyze --benchmark --out dir?",
                  file=sys.stderr)
            return 2
        data = json.loads(path.read_text(encoding="utf-8"))
        titles.add(data.get("title", "?"))
        label = args.labels[i] if args.labels else run.resolve().name
        series[label] = {g: (r.get(args.steps) or {}).get("av") for g, r in data["groups"].items()}
    args.out.mkdir(parents=True, exist_ok=True)
    png = plot_task_ratios(series, args.out / "attention_comparison.png",
                           f"{' / '.join(sorted(titles))}: AV token attention ratio ({args.steps} steps)")
    _write_json(args.out / "attention_comparison.json", {"steps": args.steps, "series": series})
    for label, values in series.items():
        print(f"{label}: " + ", ".join(f"{g} {'n/a' if v is None else f'{100 * v:.1f}%'}" for g, v in values.items()))
    print(f"wrote {png}")
    return 0


# -- small helpers ------------------------------------------------------------------------------------
def _ratios_json(ratios: dict) -> dict[str, dict | None]:
    return {g: (r.as_dict() if r is not None else None) for g, r in ratios.items()}


def _pct(r: dict | None) -> str:
    return "n/a" if r is None else f"{100 * r['av']:.1f}% (n={r['n']})"


def _summary_line(group: str, ratios: dict) -> str:
    r = ratios[group]
    if r is None:
        return f"{group} steps: none"
    return (f"{group} steps (n={r['n']}): AV {100 * r['av']:.1f}% (video {100 * r['video']:.1f}%, audio "
            f"{100 * r['audio']:.1f}%), latent {100 * r['latent']:.1f}%, text {100 * r['text']:.1f}%")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
