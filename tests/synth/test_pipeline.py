"""The whole pipeline against two scripted OpenAI-compatible servers on 127.0.0.1."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from latentomni.data.schema import LatentPart, TextPart, load_samples
from latentomni.synth.config import load_config
from latentomni.synth.pipeline import STAGE_NAMES, run_stages
from latentomni.synth.store import StageStore

from .conftest import write_captions, write_config

# What the scripted LLM and the rendered media make each stage drop (see conftest.py).
EXPECTED_DROPS = {
    "ingest": {"duplicate_id": 1, "invalid_json": 1, "invalid_record": 1, "media_missing": 1},
    "qa": {"invalid_reply": 1},
    "score": {"below_threshold": 1},
    "balance": {"category_balance": 1},
    "segment": {"corrupt_media": 1, "no_audio_track": 2},
    "captions": {"fusion_lost_sentences": 1, "hallucinated_caption": 1, "request_rejected": 1},
    "trajectory": {"answer_mismatch": 1, "audit_inconsistent": 1, "citation_count": 1},
    "assemble": {},
}
EXPECTED_IO = {  # stage: (in, out)
    "ingest": (13, 9), "qa": (18, 17), "score": (17, 16), "balance": (16, 15), "segment": (15, 12),
    "captions": (12, 9), "trajectory": (9, 6), "assemble": (6, 6),
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, media_dir):
    """Run every stage once (module scope: the assertions below share one run)."""
    from latentomni.testing.chat_server import FakeChatServer

    from .conftest import ScriptedLLM

    tmp = tmp_path_factory.mktemp("pipeline")
    scripted = ScriptedLLM()
    with FakeChatServer(scripted, idle_timeout_s=60) as a, FakeChatServer(scripted, idle_timeout_s=60) as b:
        captions = write_captions(tmp / "captions.jsonl", media_dir)
        config = write_config(tmp / "pipeline.yaml", run_dir=tmp / "run", captions=captions, media_dir=media_dir,
                              urls=[a.base_url], judge_urls=[a.base_url, b.base_url], timeout_s=1.0)
        cfg = load_config(config)
        summaries = {s.stage: s for s in run_stages(cfg, STAGE_NAMES, progress=False, log=None)}
        bodies = list(a.bodies) + list(b.bodies)
        counts = (len(a.bodies), len(b.bodies))
        # a second run over finished stages sends nothing and changes nothing
        before = (cfg.run_dir / "train.jsonl").read_bytes()
        rerun = {s.stage: s for s in run_stages(load_config(config), STAGE_NAMES, progress=False, log=None)}
        rerun_sent = len(a.bodies) + len(b.bodies) - sum(counts)
        after = (cfg.run_dir / "train.jsonl").read_bytes()
    return {"cfg": cfg, "summaries": summaries, "bodies": bodies, "counts": counts, "rerun": rerun,
            "rerun_sent": rerun_sent, "same_output": before == after, "scripted": scripted}


def test_every_stage_accounts_for_every_input(finished_run):
    for name in STAGE_NAMES:
        s = finished_run["summaries"][name]
        assert s.inputs == s.outputs + s.dropped_total and s.pending == 0, name
        assert (s.inputs, s.outputs) == EXPECTED_IO[name], name
        assert s.dropped == EXPECTED_DROPS[name], name
        saved = json.loads(StageStore(finished_run["cfg"].run_dir, name).summary_path.read_text())
        assert saved["inputs"] == saved["outputs"] + saved["dropped_total"]


def test_drops_say_where_and_why(finished_run):
    run_dir = finished_run["cfg"].run_dir
    ingest = {d.reason: d for d in StageStore(run_dir, "ingest").drops()}
    assert ingest["invalid_json"].detail.startswith(str(run_dir.parent / "captions.jsonl") + ":10:")
    assert ingest["duplicate_id"].id.endswith("captions.jsonl:11")
    segment = {d.reason for d in StageStore(run_dir, "segment").drops() if "olive" in d.id}
    assert segment == {"no_audio_track"}
    rejected = next(d for d in StageStore(run_dir, "captions").drops() if d.reason == "request_rejected")
    assert rejected.id == "clip-azure:open0" and "does not support video input" in rejected.detail


def test_assembled_samples_load_and_latent_windows_match_segments(finished_run):
    cfg = finished_run["cfg"]
    samples = load_samples(cfg.stages.assemble.output)
    assert sorted(s.id for s in samples) == sorted([
        "clip-crimson:open0", "clip-crimson:mcq0", "clip-amber:open0", "clip-teal:mcq0", "clip-indigo:open0",
        "clip-indigo:mcq0"])
    items = {r["id"]: r for r in StageStore(cfg.run_dir, "trajectory").outputs()}
    for sample in samples:
        windows = {s["index"]: (s["start"], s["end"]) for s in items[sample.id]["segments"]}
        assert windows == {1: (0.0, 2.0), 2: (2.0, 4.0)}
        for block in sample.latent_blocks:
            assert (block.start, block.end) == windows[block.segment]
        parts = sample.assistant.content
        assert isinstance(parts[-1], TextPart) and parts[-1].text.endswith("}")
        assert "[Segment" not in " ".join(p.text for p in parts if isinstance(p, TextPart))
        media = Path(cfg.stages.assemble.output).parent / sample.video.video
        assert media.resolve() == Path(items[sample.id]["clip"]["media"])


def test_mcq_sample_shape(finished_run):
    sample = next(s for s in load_samples(finished_run["cfg"].stages.assemble.output) if s.id == "clip-crimson:mcq0")
    user_text = sample.messages[0].content[1].text
    assert user_text.splitlines()[1:] == ["A. A ringing bell", "B. A barking dog", "C. A car horn", "D. Rain on a roof"]
    assert sample.answer == "A" and sample.options[0] == "A. A ringing bell"
    kinds = [type(p).__name__ for p in sample.assistant.content]
    assert kinds == ["TextPart", "LatentPart", "TextPart", "LatentPart", "TextPart"]
    assert sample.assistant.content[-1].text.endswith("\\boxed{A}")
    assert sample.modality == "Audio-Strong" and sample.question_type == "Temporal Sequence Understanding"


def test_audit_corrections_and_backslash_repair_survive(finished_run):
    samples = {s.id: s for s in load_samples(finished_run["cfg"].stages.assemble.output)}
    cited = [b.segment for b in samples["clip-teal:mcq0"].latent_blocks]
    assert cited == [1, 1]  # the audit moved the second citation
    assert samples["clip-teal:mcq0"].meta["audit_issues"] == ["first citation pointed at the wrong segment"]
    assert samples["clip-indigo:open0"].assistant.content[-1].text.endswith("\\boxed{the bell}")
    crimson = samples["clip-crimson:open0"]  # repaired malformed citation; one unsupported sentence filtered
    assert [b.segment for b in crimson.latent_blocks] == [1, 2]
    assert all("near the wall" not in (b.caption or "") for b in crimson.latent_blocks if isinstance(b, LatentPart))


def test_plain_text_wrapping_never_reaches_the_captions(finished_run):
    """indigo's captioner replies come fenced and announced ("Sure! Here is the result:"), teal/mcq's first
    video reply is a refusal: the wrapping is stripped, the refusal re-asked, nothing of either is kept."""
    items = {r["id"]: r for r in StageStore(finished_run["cfg"].run_dir, "captions").outputs()}
    texts = [c[k] for r in items.values() for c in r["captions"] for k in ("video_caption", "audio_caption", "final")]
    assert not [t for t in texts if any(w in t for w in ("```", "Sure", "Here is", "Here's", "sorry", "Hope it"))]
    indigo = items["clip-indigo:open0"]["captions"][0]
    assert indigo["video_caption"] == ("A indigo ball falls onto a wooden floor. It bounces once near the wall. "
                                       "Scene qopen.")
    assert indigo["audio_caption"] == "A bell rings once as the indigo ball lands. The room is otherwise quiet."
    assert "clip-teal:mcq0" in items
    segments = len(items["clip-teal:mcq0"]["captions"])
    assert finished_run["scripted"].seen[("video_caption", "teal", "mcq")] == 2 * segments


def test_requests_carry_the_reply_contract_and_media(finished_run):
    bodies = finished_run["bodies"]
    assert all("seed" not in b for b in bodies)
    by_model = {}
    for b in bodies:
        by_model.setdefault(b["model"], set()).add((b.get("response_format") or {}).get("type"))
    assert by_model["qwen3-text"] == {"json_schema"} and by_model["glm-judge"] == {"json_object"}
    assert by_model["omni-captioner"] == {None}
    schema = next(b for b in bodies if b["model"] == "qwen3-text")["response_format"]["json_schema"]
    assert schema["strict"] is True and schema["schema"]["additionalProperties"] is False
    video = next(p for b in bodies for m in b["messages"] if isinstance(m["content"], list)
                 for p in m["content"] if p["type"] == "video_url")
    assert video["video_url"]["url"].startswith("data:video/mp4;base64,")
    audio = next(p for b in bodies for m in b["messages"] if isinstance(m["content"], list)
                 for p in m["content"] if p["type"] == "input_audio")
    assert audio["input_audio"]["format"] == "wav" and base64.b64decode(audio["input_audio"]["data"])[:4] == b"RIFF"


def test_round_robin_reaches_every_base_url(finished_run):
    a, b = finished_run["counts"]
    assert a > 0 and b > 0


def test_faults_were_retried_and_counted(finished_run):
    s = finished_run["summaries"]["qa"].traffic
    assert s["retries"] >= 3  # a 429, a 500 and a timeout
    assert s["repair_turns"] >= 1
    seen = finished_run["scripted"].seen
    assert seen[("OpenQAReply", "violet", "open")] == 2  # slow first reply timed out, second answered


def test_second_run_sends_nothing_and_rewrites_nothing(finished_run):
    assert finished_run["rerun_sent"] == 0
    assert finished_run["same_output"]
    for name in ("qa", "captions", "trajectory"):
        assert finished_run["rerun"][name].traffic["requests_sent"] == 0


def test_dataset_card(finished_run):
    run_dir = finished_run["cfg"].run_dir
    card = json.loads((run_dir / "card.json").read_text())
    assert card["samples"] == 6
    assert sum(card["by_category"].values()) == 6 and len(card["by_category"]) == 10
    assert card["by_category"]["Logical Relation Reasoning"] == 1
    assert card["by_modality"] == {"AV-Strong": 3, "Video-Strong": 0, "Audio-Strong": 3}
    stages = {s["stage"]: s for s in card["stages"]}
    assert stages["segment"]["drop_reasons"] == EXPECTED_DROPS["segment"]
    assert all(s["in"] == s["out"] + s["dropped"] for s in card["stages"])
    md = (run_dir / "card.md").read_text()
    assert "| captions | fusion_lost_sentences | 1 | the fused caption kept not every sentence" in md


def test_every_recorded_drop_reason_is_explained(finished_run):
    from latentomni.synth.card import DROP_REASONS

    seen = {r for s in finished_run["summaries"].values() for r in s.dropped}
    assert seen <= set(DROP_REASONS)


def test_assembled_samples_load_and_train_in_the_trainer(finished_run, media_dir, tiny_base_dir, tmp_path):
    from latentomni.train.config import TrainConfig
    from latentomni.train.trainer import train

    # assemble writes paths relative to train.jsonl; the clips live elsewhere, so the dataset names the folder
    # that holds them as its media root (without it every sample is refused: tests/train/test_train_media_paths.py)

    cfg = TrainConfig.model_validate({
        "model": {"base": str(tiny_base_dir), "dtype": "float32"},
        "latent": {"num_latents": 8, "num_visual": 6, "num_audio": 2},
        "data": {"train_file": str(finished_run["cfg"].run_dir / "train.jsonl"), "fail_fast": True,
                 "media": {"max_pixels": 3136}, "media_root": str(media_dir)},
        "training": {"output_dir": str(tmp_path / "out"), "max_steps": 2, "per_device_train_batch_size": 2,
                     "learning_rate": 1e-4, "report_to": [], "disable_tqdm": True, "save_steps": 100},
    })
    metrics = train(cfg)
    assert metrics["global_step"] == 2 and metrics["train_samples"] == EXPECTED_IO["assemble"][1]
    assert metrics["skipped"] == {}
