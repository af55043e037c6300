"""End to end: ``latentomni eval`` with the real predictor on the tiny checkpoint, for every benchmark.

Each benchmark gets records in its official format and layout (see the adapters' docstrings) pointing at
short real clips (H.264 + AAC, 56x56) rendered here; the run goes through ``latentomni.cli.main`` exactly as
on the command line, then ``latentomni eval compare`` tabulates the runs.
"""

import json

import numpy as np
import pytest

from latentomni import cli
from latentomni.data.render import render_av, tone, write_wav
from latentomni.eval.benchmarks import BENCHMARKS
from latentomni.inference.predictor import LatentOmniPredictor
from lo_testing import spy_audio_in_video

OPTIONS = ["A. red", "B. blue", "C. green", "D. yellow"]


def _clip(path, seconds: float = 2.0, fps: int = 4, size: int = 56):
    """One coloured square per second, each with its own tone."""
    colours, freqs = [(220, 40, 40), (40, 80, 220), (40, 200, 60)], [330.0, 660.0, 1320.0]
    frames = np.zeros((int(seconds * fps), size, size, 3), np.uint8)
    for s in range(int(seconds)):
        frames[s * fps:(s + 1) * fps, 16:40, 16:40] = colours[s % 3]
    wave = np.concatenate([tone(freqs[s % 3], 1.0, 44100) for s in range(int(seconds))])
    return render_av(path, frames, fps, wave, 44100)


def _daily_omni(root):
    """qa.json + Videos/<id>/<id>_video.mp4 and <id>_audio.wav."""
    for vid in ("d1", "d2"):
        _clip(root / "Videos" / vid / f"{vid}_video.mp4")
        write_wav(root / "Videos" / vid / f"{vid}_audio.wav", tone(440.0, 2.0, 16000))
    qa = [{"Question": f"Which colour is first in {vid}?", "Choice": OPTIONS, "Answer": ans, "video_id": vid,
           "Type": typ, "video_category": "Music", "video_duration": "30s"}
          for vid, ans, typ in (("d1", "A", "AV Event Alignment"), ("d2", "B", "Reasoning"))]
    (root / "qa.json").write_text(json.dumps(qa))
    return root / "qa.json", root / "Videos", ["d1#1", "d2#1"]


def _worldsense(root):
    """worldsense_qa.json keyed by video id, questions under task0/task1; videos/<id>.mp4."""
    _clip(root / "videos" / "w1.mp4")
    qa = {"w1": {"video_id": "w1", "video_duration": "2s", "duration": "<1min", "domain": "Daily Life",
                 "sub_category": "Cooking", "audio_class": ["Music"], "video_caption": "Coloured squares.",
                 **{f"task{k}": {"question": q, "candidates": OPTIONS, "answer": a, "task_type": "Audio Recognition",
                                 "task_domain": "Recognition"}
                    for k, (q, a) in enumerate((("What colour first?", "A"), ("What colour last?", "B")))}}}
    (root / "worldsense_qa.json").write_text(json.dumps(qa))
    return root / "worldsense_qa.json", root / "videos", ["w1#task0", "w1#task1"]


def _omnivideobench(root):
    """One entry per video with nested questions; videos/<video>.mp4."""
    _clip(root / "videos" / "video_1.mp4")
    qa = [{"video": "video_1", "video_type": "Vlog", "duration": "00:02", "questions": [
        {"question": "How many squares?", "question_type": "counting", "audio_type": "Sound", "answer": "2",
         "options": ["A.0", "B.1", "C.2", "D.3"], "correct_option": "C"},
        {"question": "Which colour?", "question_type": "attribute", "audio_type": "Sound", "answer": "red",
         "options": OPTIONS, "correct_option": "A"},
    ]}]
    (root / "ovb.json").write_text(json.dumps(qa))
    return root / "ovb.json", root / "videos", ["video_1#1", "video_1#2"]


def _lvomnibench(root):
    """data.json question records; videos/<video_id>.mp4."""
    _clip(root / "videos" / "video_0.mp4")
    qa = [{"video_id": "video_0", "question": q, "options": OPTIONS, "correct_option": a, "question_type": "Temporal",
           "audio_type": "Sound", "difficulty": "easy", "video_category": "Film"}
          for q, a in (("What colour first?", "A"), ("What colour last?", "B"))]
    (root / "data.json").write_text(json.dumps(qa))
    return root / "data.json", root / "videos", ["video_0#1", "video_0#2"]


def _videomme(root):
    """Hugging Face rows exported to JSONL; the clips unpacked under data/<videoID>.mp4 (they keep their
    audio track: the vision-only protocol must ignore it)."""
    _clip(root / "media" / "data" / "fFjv93ACGo8.mp4")
    rows = [{"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
             "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": qid,
             "task_type": "Counting Problem", "question": q, "options": OPTIONS, "answer": a}
            for qid, q, a in (("001-1", "What colour first?", "A"), ("001-2", "What colour last?", "B"))]
    (root / "videomme.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return root / "videomme.jsonl", root / "media", ["001-1", "001-2"]


def _world(root):
    """The synthetic world's held-out split as `make demo` renders it (one test clip, no training clips)."""
    from latentomni.data.schema import load_samples
    from latentomni.data.world import generate_world

    world = generate_world(root, n_train_clips=0, n_test_clips=1, seed=0, workers=1)
    return world.path("test"), world.out_dir, [s.id for s in load_samples(world.path("test"))[:2]]


LAYOUTS = {"daily_omni": _daily_omni, "worldsense": _worldsense, "omnivideobench": _omnivideobench,
           "lvomnibench": _lvomnibench, "videomme": _videomme, "world": _world}


@pytest.fixture(scope="module")
def ckpt(tiny_base_dir, tmp_path_factory):
    from latentomni.model.wrapper import LatentOmniModel

    out = tmp_path_factory.mktemp("tiny_ckpt")
    LatentOmniModel.from_base(tiny_base_dir).save_pretrained(out)
    return out


def test_eval_all_benchmarks_on_the_tiny_model_then_compare(ckpt, tmp_path, monkeypatch, capsys):
    assert set(LAYOUTS) == set(BENCHMARKS), "a new benchmark needs its layout here"
    modes = spy_audio_in_video(monkeypatch)  # qid -> whether the prompt interleaved the video's audio track
    runs = tmp_path / "runs" / "tiny"
    for name, layout in LAYOUTS.items():
        annotations, media_root, qids = layout(tmp_path / name)
        out = runs / name
        code = cli.main(["eval", "--model", str(ckpt), "--benchmark", name, "--annotations", str(annotations),
                         "--media-root", str(media_root), "--limit", "2", "--out", str(out), "--no-progress",
                         "--set", "decoding.max_new_tokens=8", "--set", "media.max_pixels=3136"])
        assert code == 0, name

        predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        asked = [p["qid"] for p in predictions]
        assert asked == qids, name
        assert all(isinstance(p["reply"], str) and "error" not in p for p in predictions), predictions
        assert all(p["pred"] is None or p["pred"] in "ABCD" for p in predictions)
        results = json.loads((out / "results.json").read_text())
        assert results["benchmark"] == name and results["n"] == 2 and results["complete"]
        assert 0.0 <= results["accuracy"] <= 1.0 and results["n_missing_media"] == 0
        settings = json.loads((out / "settings.json").read_text())
        assert settings["benchmark"] == name and settings["limit"] == 2
        assert settings["predictor"]["max_pixels"] == 3136 and settings["predictor"]["decoding"]["max_new_tokens"] == 8
        if name == "videomme":
            assert [modes[q] for q in asked] == [False, False], "VideoMME runs vision-only"
        else:
            assert [modes[q] for q in asked] == [True, True], f"{name} uses the clip's own audio track"
    capsys.readouterr()

    assert cli.main(["eval", "compare", str(runs), "--out", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    header = table.splitlines()[0]
    assert all(b.title in header for b in BENCHMARKS.values())
    assert table.splitlines()[2].startswith("| tiny |")
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 1000


def _questions(video, n: int):
    from latentomni.data.questions import EvalItem

    return [EvalItem(benchmark="t", qid=f"q{i}", question=f"Which colour comes {i}?", options=OPTIONS, answer="A",
                     video=video, audio=None, use_audio=True) for i in range(n)]


def test_predictor_decodes_a_clip_once_for_its_questions(ckpt, tmp_path, monkeypatch):
    """Five questions about one clip, asked one per call as the runner does at batch size 1: one decode."""
    from latentomni.data import features

    clip, silent = _clip(tmp_path / "v.mp4"), tmp_path / "silent.mp4"
    frames = np.zeros((8, 56, 56, 3), np.uint8)
    render_av(silent, frames, 4)  # no audio track: answered vision only
    calls: dict[str, list[str]] = {"video": [], "audio": []}
    decode_video, decode_audio = features.decode_video, features.decode_audio

    def video_spy(path, *args, **kwargs):
        calls["video"].append(str(path))
        return decode_video(path, *args, **kwargs)

    def audio_spy(path, *args, **kwargs):
        calls["audio"].append(str(path))
        return decode_audio(path, *args, **kwargs)

    monkeypatch.setattr(features, "decode_video", video_spy)
    monkeypatch.setattr(features, "decode_audio", audio_spy)
    pred = LatentOmniPredictor(str(ckpt), max_new_tokens=2, max_pixels=3136, device="cpu", dtype="float32")
    outs = [pred.predict([item])[0] for item in _questions(clip, 5)]
    assert all("error" not in o and isinstance(o["reply"], str) for o in outs)
    assert calls == {"video": [str(clip)], "audio": [str(clip)]}

    calls["video"].clear()
    calls["audio"].clear()
    outs = [pred.predict([item])[0] for item in _questions(silent, 5)]
    assert all(o["note"] == "vision only: no audio track" for o in outs)
    assert calls["video"] == [str(silent)] * 2  # the failed audio-in-video attempt, then vision only; then cached

    uncached = LatentOmniPredictor(str(ckpt), max_new_tokens=2, max_pixels=3136, device="cpu", dtype="float32",
                                   media_cache_size=0)
    calls["video"].clear()
    uncached.predict(_questions(clip, 2))
    assert calls["video"] == [str(clip)] * 2  # the spy does count every decode
    assert uncached.settings() == pred.settings()  # the cache changes no reply, so it is not a setting


def test_predictor_reports_a_broken_clip_as_one_line_error(ckpt, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video\n" * 10)
    pred = LatentOmniPredictor(str(ckpt), max_new_tokens=2, max_pixels=3136, device="cpu", dtype="float32")
    (out,) = pred.predict(_questions(broken, 1))
    assert set(out) == {"error"} and str(broken) in out["error"] and "\n" not in out["error"]
