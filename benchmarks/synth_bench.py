"""Throughput of the ``synth`` QA stage against a local server that answers every request after 100 ms.

``synth_efficiency`` = measured requests/s of the QA stage at concurrency 64, divided by the ideal
64 / 0.1 s = 640 requests/s (target >= 0.8). The whole stage path is measured: unit building, prompt
rendering, the official ``openai`` client, the response cache, reply validation and the append-only
outputs. The server runs in its own process so that its work does not share the client's GIL; on a
machine with fewer than two free cores the two still compete for CPU, which shows up in the number.
``client_cpu_ms_per_request`` separates the two causes: the client's own CPU cost per request, and
the efficiency that cost alone would allow on a free core (``cpu_bound_efficiency``).

``synth_vllm_efficiency`` = requests/s of the same QA stage against a real vLLM server (the tiny
model of ``latentomni.testing.vllm_server``, schema-constrained by xgrammar) at concurrency 32, divided by
requests/s of a bare ``AsyncOpenAI`` loop posting the identical rendered request bodies to the same
server in the same run (target >= 0.9). Needs the vLLM venv of ``make test-vllm``; without it the
function raises and ``make bench`` records the error.

    python benchmarks/synth_bench.py            # prints both results as JSON
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

LATENCY_S = 0.1
CONCURRENCY = 64
IDEAL_RPS = CONCURRENCY / LATENCY_S

OPEN = json.dumps({"question": "What rings right after the ball lands on the floor?", "answer": "the bell",
                   "reasoning_type": "sound_action_attribution"})
MCQ = json.dumps({"question": "Which sound follows each landing of the ball?",
                  "options": {"A": "A bell", "B": "A dog", "C": "A horn", "D": "Rain"}, "answer": "A",
                  "reasoning_type": "temporal"})


def _write_inputs(folder: Path, n_clips: int) -> Path:
    from latentomni.data.render import render_av, tone

    render_av(folder / "clip.mp4", np.zeros((10, 32, 32, 3), np.uint8), 10, tone(440, 1.0, 16000), sample_rate=16000)
    lines = []
    for i in range(n_clips):  # distinct captions: distinct prompts, so nothing is answered from the cache
        lines.append(json.dumps({
            "id": f"bench-{i:05d}", "media": "clip.mp4", "duration": 1.0,
            "caption": f"Take {i}: a ball lands on a wooden floor and a bell rings at the same moment.",
            "events": [{"start": 0.0, "end": 0.5, "modality": "visual", "text": "A ball lands."},
                       {"start": 0.2, "end": 0.6, "modality": "audio", "text": "A bell rings."}]}))
    path = folder / "captions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(folder: Path, captions: Path, base_url: str, *, model: str = "bench", temperature: float = 0.7,
            max_tokens: int = 256, concurrency: int = CONCURRENCY, timeout_s: float = 30, name: str = "bench",
            endpoint_extra: dict | None = None, extra: dict | None = None) -> Path:
    """A pipeline config whose every LLM call goes to one text endpoint at ``base_url``."""
    call = {"endpoint": "text", "model": model, "sampling": {"temperature": temperature, "max_tokens": max_tokens}}
    cfg = {
        "run_dir": str(folder / "run"),
        "endpoints": {"text": {"base_urls": [base_url], "max_concurrency": concurrency, "timeout_s": timeout_s,
                               **(endpoint_extra or {})}},
        "stages": {
            "ingest": {"inputs": [{"path": str(captions)}], "min_duration_s": 0.5},
            "qa": {"llm": call, "concurrency": concurrency},
            "score": {"llm": call},
            "captions": {k: call for k in ("video_llm", "audio_llm", "fusion_llm", "refine_llm", "filter_llm")},
            "trajectory": {"llm": call, "audit_llm": call},
        },
        **(extra or {}),
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def synth_efficiency(n_requests: int = 1280) -> dict:
    """Measure the QA stage at concurrency 64 against a 100 ms-latency server; see the module docstring."""
    from latentomni.synth.config import load_config
    from latentomni.synth.pipeline import run_stages
    from latentomni.testing.chat_server import CannedResponder, FakeChatServer

    responder = CannedResponder([("OpenQAReply", OPEN), ("MCQReply", MCQ)], delay_s=LATENCY_S)
    with tempfile.TemporaryDirectory() as tmp, FakeChatServer.in_subprocess(responder, idle_timeout_s=120) as server:
        folder = Path(tmp)
        cfg = load_config(_config(folder, _write_inputs(folder, n_requests // 2), server.base_url))
        run_stages(cfg, ["ingest"], progress=False)
        started, cpu_started = time.perf_counter(), time.process_time()
        (summary,) = run_stages(cfg, ["qa"], progress=False)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    sent = summary.traffic["requests_sent"]
    rps = sent / wall
    cpu_ms = 1000 * cpu / sent
    return {
        "synth_efficiency": round(rps / IDEAL_RPS, 3),
        "throughput_rps": round(rps, 1),
        "ideal_rps": IDEAL_RPS,
        "requests_sent": sent,
        "outputs": summary.outputs,
        "wall_s": round(wall, 3),
        "stage_elapsed_s": summary.elapsed_s,
        # client CPU per request, and the efficiency that CPU cost alone would allow on one free core:
        # when synth_efficiency is far below it, the client was starved of CPU rather than slow
        "client_cpu_ms_per_request": round(cpu_ms, 3),
        "cpu_bound_efficiency": round(min(1.0, 1000 / cpu_ms / IDEAL_RPS), 3),
        "concurrency": CONCURRENCY,
        "latency_s": LATENCY_S,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


VLLM_CONCURRENCY = 32
ROOT = Path(__file__).resolve().parents[1]


def _vllm_config(folder: Path, captions: Path, base_url: str, model: str) -> Path:
    """Only the QA stage matters here; one reply per unit (no repair turns), so both sides send the same."""
    return _config(folder, captions, base_url, model=model, temperature=0.0, max_tokens=128,
                   concurrency=VLLM_CONCURRENCY, timeout_s=120, name="vllm",
                   endpoint_extra={"response_format": "json_schema"}, extra={"retry": {"invalid_reply_attempts": 0}})


def _rendered_qa_requests(cfg) -> list[dict]:
    """The QA stage's request bodies, rendered by the stage and the client exactly as a run sends them."""
    from latentomni.synth.cache import ResponseCache
    from latentomni.synth.client import LLMClient
    from latentomni.synth.replies import MCQReply, OpenQAReply
    from latentomni.synth.stages import StageContext
    from latentomni.synth.stages.qa import QAStage
    from latentomni.synth.store import StageStore

    stage, ctx = QAStage(), StageContext(cfg, show_progress=False)
    cache = ResponseCache(cfg.run_dir / "render-only.sqlite")
    client = LLMClient(cfg.endpoints, cache, cfg.retry)
    call = ctx.call("qa.llm")
    bodies = []
    for unit in stage.units(ctx, StageStore(cfg.run_dir, "ingest").outputs()):
        reply = OpenQAReply if unit.payload[1] == "open" else MCQReply
        bodies.append(client.build_params(call, stage.messages(ctx, unit), reply))
    cache.close()
    return bodies


async def _bare_loop(base_url: str, bodies: list[dict], concurrency: int) -> float:
    """Requests/s of the plainest client: one AsyncOpenAI, a semaphore, the same bodies, the same route."""
    import asyncio

    import openai
    from openai.types.chat import ChatCompletion

    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=120)
    slots = asyncio.Semaphore(concurrency)

    async def one(body: dict) -> None:
        async with slots:
            await client.post("/chat/completions", body=body, cast_to=ChatCompletion)

    started = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    elapsed = time.perf_counter() - started
    await client.close()
    return len(bodies) / elapsed


def synth_vllm_efficiency(n_requests: int = 256, repeats: int = 5) -> dict:
    """QA stage vs a bare AsyncOpenAI loop against one real vLLM server; see the module docstring.

    The two alternate ``repeats`` times, taking turns at going first, after a warm-up pass (which
    compiles the two reply grammars and fills vLLM's prefix cache, so that no measured pass pays for
    what another did not); each pipeline pass starts from an empty run folder, so every unit is really
    sent. Medians are compared."""
    import asyncio
    import shutil
    import statistics

    from latentomni.synth.config import load_config
    from latentomni.synth.pipeline import run_stages
    from latentomni.testing.vllm_server import VLLMServer, build_tiny_chat_model, vllm_python

    venv = ROOT / ".venv-vllm"
    python = vllm_python(venv)  # raises with the command that creates it
    model = build_tiny_chat_model(venv / "state" / "tiny-chat")
    with tempfile.TemporaryDirectory() as tmp, VLLMServer(python, model, venv / "state") as server:
        folder = Path(tmp)
        captions = _write_inputs(folder, n_requests // 2)
        cfg = load_config(_vllm_config(folder, captions, server.base_urls[0], server.served_model_name))
        run_stages(cfg, ["ingest"], progress=False)
        bodies = _rendered_qa_requests(cfg)
        asyncio.run(_bare_loop(server.base_urls[0], bodies, VLLM_CONCURRENCY))  # warm-up
        bare: list[float] = []
        stage: list[float] = []
        outputs: list[int] = []

        def stage_pass() -> None:
            for leftover in ("stages/qa.jsonl", "stages/qa.drops.jsonl", "cache.sqlite", "cache.sqlite-wal",
                             "cache.sqlite-shm"):
                (cfg.run_dir / leftover).unlink(missing_ok=True)
            started = time.perf_counter()
            (summary,) = run_stages(cfg, ["qa"], progress=False)
            wall = time.perf_counter() - started
            if summary.traffic["requests_sent"] != len(bodies):
                raise RuntimeError(f"the QA stage sent {summary.traffic['requests_sent']} requests, not {len(bodies)}")
            stage.append(len(bodies) / wall)
            outputs.append(summary.outputs)

        def bare_pass() -> None:
            bare.append(asyncio.run(_bare_loop(server.base_urls[0], bodies, VLLM_CONCURRENCY)))

        for rep in range(repeats):  # alternating which goes first, so a drift in load hits both alike
            for measure in (bare_pass, stage_pass) if rep % 2 == 0 else (stage_pass, bare_pass):
                measure()
        startup_s = server.startup_s
        shutil.rmtree(cfg.run_dir, ignore_errors=True)
    stage_rps, bare_rps = statistics.median(stage), statistics.median(bare)
    return {
        "synth_vllm_efficiency": round(stage_rps / bare_rps, 3),
        "vllm_stage_rps": round(stage_rps, 1),
        "vllm_bare_rps": round(bare_rps, 1),
        "vllm_stage_rps_runs": [round(x, 1) for x in stage],
        "vllm_bare_rps_runs": [round(x, 1) for x in bare],
        "vllm_requests_per_run": len(bodies),
        "vllm_valid_replies_per_run": outputs,
        "vllm_concurrency": VLLM_CONCURRENCY,
        "vllm_server_startup_s": startup_s,
    }


if __name__ == "__main__":
    results = synth_efficiency()
    try:
        results.update(synth_vllm_efficiency())
    except Exception as e:  # as `make bench` does: a missing vLLM venv is reported, not fatal
        results["synth_vllm_efficiency_error"] = f"{type(e).__name__}: {e}"
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
