"""Run a predictor over a benchmark: stream predictions, resume, shard across processes, write results.

An evaluation out dir holds::

    settings.json            predictor.settings() + benchmark, annotation and media paths, limit, batch size
    predictions.jsonl        one line per answered question (qid, gold, parsed letter, reply, meta, extras),
                             or per question whose media failed to decode (qid, error: "<file>: <reason>")
    predictions.rank{i}.jsonl  per-process files while a sharded run is under way (merged at its end)
    results.json             answered / parse failures / media errors / missing media / pending, accuracy
                             over the answered and over all questions, breakdowns (see scoring.score)

Predictions are appended and flushed after every batch, so an interrupted run loses at most one batch and a
rerun with the same out dir skips every qid already answered. A row with an ``error`` is kept (it says why the
question has no answer) but is not an answer: the rerun asks that question again, and once it is answered the
answer wins over the error. Under ``accelerate launch`` each process
takes every n-th question and writes its own file; the main process merges them after
``wait_for_everyone``. Without a launcher ``PartialState`` is a single process and none of that shows.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from latentomni import __version__
from latentomni.data.questions import EvalItem, Predictor
from latentomni.eval.benchmarks import Benchmark, get_benchmark
from latentomni.eval.scoring import judge, score

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
SETTINGS = "settings.json"
RESULTS = "results.json"
RANK_GLOB = "predictions.rank*.jsonl"
# Settings that must match for a rerun to append to the same predictions file.
RESUME_KEYS = ("benchmark", "annotations", "predictor")


class SettingsMismatchError(RuntimeError):
    """A rerun would append predictions made with different settings to an existing run."""


class ProcessState(Protocol):
    """The part of ``accelerate.PartialState`` the runner uses (tests pass a stand-in)."""

    num_processes: int
    process_index: int
    is_main_process: bool
    is_local_main_process: bool

    def wait_for_everyone(self) -> None: ...


class LocalProcess:
    """One process and no launcher: for a caller that evaluates in-process (the demo, between training
    runs), where asking ``accelerate`` would set up the process state the next ``Trainer`` configures."""

    num_processes = 1
    process_index = 0
    is_main_process = True
    is_local_main_process = True

    def wait_for_everyone(self) -> None:
        pass


def run_eval(
    predictor: Predictor,
    benchmark: str | Benchmark,
    annotations: str | Path,
    media_root: str | Path,
    out_dir: str | Path,
    limit: int | None = None,
    batch_size: int = 1,
    *,
    state: ProcessState | None = None,
    progress: bool = True,
    settings_from: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """Evaluate ``predictor`` on the first ``limit`` questions of ``benchmark`` (all when None).

    ``settings_from`` says where each predictor setting came from (``{"media.fps": "eval config"}``; the
    ``eval`` command passes ``EvalConfig.predictor_kwargs``' account); it is written to settings.json and,
    with the predictor's settings, to results.json, so a result says what it was asked with.

    Returns the results dict on the main process and None on the others. Items whose media file is missing
    are not sent to the predictor; they are listed in results.json and retried by the next rerun, as are
    items whose media the predictor could not decode (it returned an ``error`` for them).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    bench = get_benchmark(benchmark)
    annotations, media_root, out_dir = Path(annotations).resolve(), Path(media_root).resolve(), Path(out_dir)
    state = state if state is not None else _partial_state()

    items = bench.load(annotations, media_root)[:limit]
    missing = {it.qid: [str(p) for p in it.missing_media()] for it in items if it.missing_media()}
    if missing and state.is_main_process:
        first = next(iter(missing.values()))[0]
        log.warning("%s: %d of %d questions have missing media (e.g. %s)", bench.title, len(missing), len(items), first)

    settings = run_settings(predictor, bench, annotations, media_root, limit, batch_size, state.num_processes)
    if settings_from:
        settings["settings_from"] = dict(settings_from)
    out_dir.mkdir(parents=True, exist_ok=True)
    stored = load_predictions(out_dir)
    done = {qid for qid, record in stored.items() if not record.get("error")}
    if stored:
        check_resumable(out_dir / SETTINGS, settings)
    state.wait_for_everyone()  # every process has read the old settings before the main one rewrites them
    if state.is_main_process:
        _write_json(out_dir / SETTINGS, settings)

    mine = [
        it
        for i, it in enumerate(items)
        if i % state.num_processes == state.process_index and it.qid not in missing and it.qid not in done
    ]
    name = PREDICTIONS if state.num_processes == 1 else f"predictions.rank{state.process_index}.jsonl"
    _predict_into(predictor, mine, out_dir / name, batch_size, bench.title, progress and state.is_local_main_process)

    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    predictions = merge_predictions(out_dir)
    results = score(bench, items, predictions, missing)
    results["predictor"] = settings["predictor"]
    if settings_from:
        results["settings_from"] = dict(settings_from)
    if results["n_media_errors"]:
        qid, error = next(iter(results["media_errors"].items()))
        log.warning("%s: %d questions could not be asked because their media failed to decode (e.g. %s: %s); "
                    "they are listed in %s and asked again by a rerun", bench.title, results["n_media_errors"],
                    qid, error, out_dir / RESULTS)
    _write_json(out_dir / RESULTS, results)
    bench.write_official(out_dir, items, predictions)  # e.g. Video-MME's own format; most benchmarks have none
    return results


def run_settings(
    predictor: Predictor,
    bench: Benchmark,
    annotations: Path,
    media_root: Path,
    limit: int | None,
    batch_size: int,
    num_processes: int,
) -> dict[str, Any]:
    """What settings.json records: enough to rerun the evaluation and to refuse mixing two configurations."""
    return {
        "benchmark": bench.name,
        "annotations": str(annotations),
        "media_root": str(media_root),
        "limit": limit,
        "batch_size": batch_size,
        "num_processes": num_processes,
        "predictor": json.loads(json.dumps(predictor.settings(), default=str)),
        "latentomni_version": __version__,
    }


def check_resumable(path: Path, settings: dict[str, Any]) -> None:
    """Raise if the run in ``path``'s folder was made with another benchmark, file or predictor."""
    if not path.is_file():
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    differ = [k for k in RESUME_KEYS if saved.get(k) != settings.get(k)]
    if differ:
        raise SettingsMismatchError(
            f"{path.parent}: holds predictions made with different {', '.join(differ)} "
            f"(saved {[saved.get(k) for k in differ]}, now {[settings.get(k) for k in differ]}); "
            "use another --out, or delete the folder to start over"
        )


def load_predictions(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Every stored prediction by qid: predictions.jsonl first, then any per-process files.

    The first answer for a qid wins; an ``error`` row (media that failed to decode) stands only while the
    question has no answer, and then its latest error stands, so a rerun that fails again reports why.
    """
    found: dict[str, dict[str, Any]] = {}
    for path in [out_dir / PREDICTIONS, *sorted(out_dir.glob(RANK_GLOB))]:
        for record in _read_jsonl(path):
            qid = str(record["qid"])
            if qid not in found or found[qid].get("error"):
                found[qid] = record
    return found


def merge_predictions(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Fold per-process files into predictions.jsonl (deduplicated by qid) and delete them."""
    predictions = load_predictions(out_dir)
    rank_files = sorted(out_dir.glob(RANK_GLOB))
    if rank_files:
        tmp = out_dir / (PREDICTIONS + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for record in predictions.values():
                f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        tmp.replace(out_dir / PREDICTIONS)
        for path in rank_files:
            path.unlink()
    return predictions


def _predict_into(
    predictor: Predictor, items: list[EvalItem], path: Path, batch_size: int, desc: str, show: bool
) -> None:
    _terminate_last_line(path)
    with path.open("a", encoding="utf-8") as f, tqdm(total=len(items), desc=desc, unit="q", disable=not show) as bar:
        for batch in _batches(items, batch_size):
            outputs = predictor.predict(batch)
            _check_outputs(batch, outputs)
            for item, out in zip(batch, outputs, strict=True):
                f.write(json.dumps(_prediction_record(item, out), ensure_ascii=False, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(batch))


def _prediction_record(item: EvalItem, out: dict[str, Any]) -> dict[str, Any]:
    if out.get("error"):
        extras = {k: v for k, v in out.items() if k not in ("reply", "error")}
        return {
            "qid": item.qid,
            "benchmark": item.benchmark,
            "answer": item.answer,
            "error": " ".join(str(out["error"]).split()),  # one line: "<file>: <reason>"
            "meta": item.meta,
            "video": str(item.video) if item.video else None,
            **extras,
        }
    extras = {k: v for k, v in out.items() if k != "reply"}
    return {
        "qid": item.qid,
        "benchmark": item.benchmark,
        "answer": item.answer,
        **judge(item, out["reply"]),
        "reply": out["reply"],
        "meta": item.meta,
        "video": str(item.video) if item.video else None,
        **extras,
    }


def _check_outputs(batch: list[EvalItem], outputs: Any) -> None:
    if not isinstance(outputs, Sequence) or len(outputs) != len(batch):
        got = len(outputs) if isinstance(outputs, Sequence) else type(outputs).__name__
        raise TypeError(f"predictor.predict returned {got} outputs for a batch of {len(batch)}; expected one each")
    for item, out in zip(batch, outputs, strict=True):
        if isinstance(out, dict) and isinstance(out.get("error"), str) and out["error"].strip():
            continue
        if not isinstance(out, dict) or not isinstance(out.get("reply"), str):
            raise TypeError(
                f"predictor.predict output for {item.qid} must be a dict with a str 'reply' (or a str 'error' "
                f"when its media could not be decoded), got {out!r}"
            )


def _batches(items: list[EvalItem], size: int) -> Iterator[list[EvalItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut off by a crash; its question is simply asked again
                log.warning("%s:%d: skipping an unreadable prediction line", path, lineno)
                continue
            if isinstance(record, dict) and "qid" in record:
                yield record


def _terminate_last_line(path: Path) -> None:
    """If a crash left a partial last line, end it so the next record starts on its own line."""
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
        if last != b"\n":
            with path.open("ab") as f:
                f.write(b"\n")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def _partial_state() -> ProcessState:
    """The launcher's processes. ``cpu`` must be passed explicitly: unlike ``Accelerator``, ``PartialState``
    ignores ``ACCELERATE_USE_CPU``, and without it a multi-process CPU launch (gloo) would make every rank
    believe it is alone and answer every question."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.accelerator.is_available())
