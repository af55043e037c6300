"""The runner end to end with a scripted predictor: streaming, resume, missing media, scoring, sharding."""

import json

import pytest

from latentomni.eval.runner import SettingsMismatchError, load_predictions, run_eval


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_results_match_hand_counted_numbers(daily_omni, daily_omni_replies, scripted, tmp_path):
    qa, videos = daily_omni
    out = tmp_path / "run"
    results = run_eval(scripted(daily_omni_replies), "daily-omni", qa, videos, out, progress=False)

    # 5 answerable questions (vid3's clip is missing): right, wrong, unparseable, right by text, right.
    assert results["n"] == 5 and results["n_correct"] == 3
    assert results["accuracy"] == pytest.approx(0.6)
    assert results["n_parse_failures"] == 1 and results["parse_failure_rate"] == pytest.approx(0.2)
    assert results["n_missing_media"] == 1 and list(results["missing_media"]) == ["vid3#1"]
    assert results["missing_media"]["vid3#1"][0].endswith("vid3_video.mp4")  # says where it looked
    # vid3's missing clip leaves the run incomplete: a question without a prediction is not done.
    assert not results["complete"] and results["n_pending"] == 0
    assert results["n_answered"] == 5 and results["n_selected"] == 6 and results["n_media_errors"] == 0
    assert results["accuracy_overall"] == pytest.approx(3 / 6)

    by_type = results["breakdowns"]["task_type"]["groups"]
    # "Event Sequence" and "event sequence" are one group, shown with the paper's spelling, paper order.
    assert list(by_type) == ["Event Sequence", "Inference", "Reasoning"]
    assert {k: (g["n"], g["correct"]) for k, g in by_type.items()} == {
        "Event Sequence": (2, 1),
        "Inference": (2, 1),
        "Reasoning": (1, 1),
    }
    by_duration = results["breakdowns"]["duration"]["groups"]
    assert {k: (g["n"], g["correct"]) for k, g in by_duration.items()} == {"30s": (3, 2), "60s": (2, 1)}
    assert by_duration["30s"]["accuracy"] == pytest.approx(2 / 3)
    by_category = results["breakdowns"]["video_category"]["groups"]
    assert {k: g["n"] for k, g in by_category.items()} == {"Music": 1, "Pets & Animals": 2, "Sports": 2}

    saved = json.loads((out / "results.json").read_text())
    assert saved["accuracy"] == pytest.approx(0.6)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["benchmark"] == "daily_omni"
    assert settings["predictor"] == {"model": "scripted", "fps": 2.0, "K": 40}
    assert settings["annotations"] == str(qa.resolve()) and settings["limit"] is None


def test_predictions_stream_with_parse_and_extras(daily_omni, daily_omni_replies, scripted, tmp_path):
    qa, videos = daily_omni
    out = tmp_path / "run"
    predictor = scripted(daily_omni_replies)
    run_eval(predictor, "daily_omni", qa, videos, out, batch_size=2, progress=False)

    assert predictor.calls == [["vid1#1", "vid1#2"], ["vid2#1", "vid2#2"], ["vid4#1"]]
    records = {r["qid"]: r for r in _lines(out / "predictions.jsonl")}
    assert set(records) == {"vid1#1", "vid1#2", "vid2#1", "vid2#2", "vid4#1"}
    first = records["vid1#1"]
    assert (first["answer"], first["pred"], first["correct"], first["parse_method"]) == ("B", "B", True, "boxed")
    assert first["n_latent_blocks"] == 1 and first["meta"]["task_type"] == "Event Sequence"
    assert records["vid2#1"]["pred"] is None and records["vid2#1"]["correct"] is False


def test_resume_skips_finished_questions(daily_omni, daily_omni_replies, scripted, tmp_path):
    qa, videos = daily_omni
    out = tmp_path / "run"
    first = scripted(daily_omni_replies)
    partial = run_eval(first, "daily_omni", qa, videos, out, limit=2, progress=False)
    assert first.asked == ["vid1#1", "vid1#2"]
    assert partial["n"] == 2 and partial["n_selected"] == 2

    second = scripted(daily_omni_replies)
    results = run_eval(second, "daily_omni", qa, videos, out, progress=False)
    assert second.asked == ["vid2#1", "vid2#2", "vid4#1"]  # nothing asked twice, missing clip not asked
    qids = [r["qid"] for r in _lines(out / "predictions.jsonl")]
    assert len(qids) == len(set(qids)) == 5
    assert results["accuracy"] == pytest.approx(0.6)

    third = scripted(daily_omni_replies)
    again = run_eval(third, "daily_omni", qa, videos, out, progress=False)
    assert third.calls == [] and again["accuracy"] == pytest.approx(0.6)


def test_media_that_appears_later_is_predicted_on_rerun(daily_omni, daily_omni_replies, scripted, tmp_path):
    qa, videos = daily_omni
    out = tmp_path / "run"
    run_eval(scripted(daily_omni_replies), "daily_omni", qa, videos, out, progress=False)
    (videos / "vid3").mkdir()
    (videos / "vid3" / "vid3_video.mp4").write_bytes(b"")
    rerun = scripted(daily_omni_replies)
    results = run_eval(rerun, "daily_omni", qa, videos, out, progress=False)
    assert rerun.asked == ["vid3#1"]
    assert results["n"] == 6 and results["n_missing_media"] == 0 and results["n_correct"] == 4
    assert results["complete"] and results["accuracy_overall"] == pytest.approx(4 / 6)


def test_interrupted_run_resumes_after_a_cut_line(daily_omni, daily_omni_replies, scripted, tmp_path):
    qa, videos = daily_omni
    out = tmp_path / "run"
    run_eval(scripted(daily_omni_replies), "daily_omni", qa, videos, out, limit=3, progress=False)
    path = out / "predictions.jsonl"
    text = path.read_text()
    path.write_text(text[: text.rindex("{") + 20])  # the crash cut the last record mid-line
    rerun = scripted(daily_omni_replies)
    results = run_eval(rerun, "daily_omni", qa, videos, out, progress=False)
    assert rerun.asked == ["vid2#1", "vid2#2", "vid4#1"]
    assert results["n"] == 5 and set(load_predictions(out)) == set(daily_omni_replies) - {"vid3#1"}


def test_rerun_with_other_settings_is_refused(daily_omni, daily_omni_replies, scripted, tmp_path):
    qa, videos = daily_omni
    out = tmp_path / "run"
    run_eval(scripted(daily_omni_replies), "daily_omni", qa, videos, out, limit=1, progress=False)
    other = scripted(daily_omni_replies, settings={"model": "scripted", "fps": 1.0, "K": 40})
    with pytest.raises(SettingsMismatchError, match="predictor"):
        run_eval(other, "daily_omni", qa, videos, out, progress=False)
    assert other.calls == []


def test_bad_predictor_output_is_a_clear_error(daily_omni, scripted, tmp_path):
    qa, videos = daily_omni

    class Broken(scripted):
        def predict(self, items):
            return [{"text": "B"} for _ in items]

    with pytest.raises(TypeError, match="str 'reply'"):
        run_eval(Broken({}), "daily_omni", qa, videos, tmp_path / "run", progress=False)


def test_sharded_run_merges_rank_files(daily_omni, daily_omni_replies, scripted, fake_state, tmp_path):
    qa, videos = daily_omni
    out = tmp_path / "run"
    rank1, rank0 = scripted(daily_omni_replies), scripted(daily_omni_replies)
    assert run_eval(rank1, "daily_omni", qa, videos, out, state=fake_state(1, 2), progress=False) is None
    assert (out / "predictions.rank1.jsonl").is_file() and not (out / "results.json").exists()
    results = run_eval(rank0, "daily_omni", qa, videos, out, state=fake_state(0, 2), progress=False)

    # Every other question per rank (vid3#1, index 4, has no clip and goes to nobody).
    assert rank0.asked == ["vid1#1", "vid2#1"] and rank1.asked == ["vid1#2", "vid2#2", "vid4#1"]
    assert not list(out.glob("predictions.rank*.jsonl"))
    qids = [r["qid"] for r in _lines(out / "predictions.jsonl")]
    assert sorted(qids) == sorted(set(daily_omni_replies) - {"vid3#1"})
    assert results["accuracy"] == pytest.approx(0.6)
    assert json.loads((out / "settings.json").read_text())["num_processes"] == 2


@pytest.mark.slow
def test_accelerate_launch_shards_across_two_processes(daily_omni, daily_omni_replies, tmp_path):
    """The real launcher: two CPU processes, each writes its own file, rank 0 merges."""
    import subprocess
    import sys

    qa, videos = daily_omni
    out = tmp_path / "run"
    script = tmp_path / "launch_eval.py"
    script.write_text(
        "import json, sys\n"
        "from latentomni.eval import run_eval\n"
        "replies = json.loads(sys.argv[4])\n"
        "class P:\n"
        "    def settings(self): return {'model': 'scripted'}\n"
        "    def predict(self, items): return [{'reply': replies[it.qid]} for it in items]\n"
        "run_eval(P(), 'daily_omni', sys.argv[1], sys.argv[2], sys.argv[3], progress=False)\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(script),
        str(qa),
        str(videos),
        str(out),
        json.dumps(daily_omni_replies),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    results = json.loads((out / "results.json").read_text())
    assert results["n"] == 5 and results["accuracy"] == pytest.approx(0.6)
    assert not list(out.glob("predictions.rank*.jsonl"))


class _BrokenMedia:
    """A scripted predictor whose decoder fails on some qids, as LatentOmniPredictor reports a MediaError."""

    def __init__(self, scripted, replies, broken):
        self.inner, self.broken = scripted(replies), broken

    def settings(self):
        return self.inner.settings()

    def predict(self, items):
        outs = self.inner.predict(items)
        return [{"error": self.broken[it.qid]} if it.qid in self.broken else out
                for it, out in zip(items, outs, strict=True)]


def test_media_error_is_reported_apart_and_retried_by_a_rerun(daily_omni, daily_omni_replies, scripted, tmp_path):
    qa, videos = daily_omni
    out = tmp_path / "run"
    error = f"{videos}/vid2/vid2_video.mp4: cannot open media\n(Invalid data found when processing input)"
    first = _BrokenMedia(scripted, daily_omni_replies, {"vid2#2": error})
    results = run_eval(first, "daily_omni", qa, videos, out, progress=False)

    # Answered: vid1#1 right, vid1#2 wrong, vid2#1 unparseable, vid4#1 right; vid2#2 a media error; vid3 missing.
    assert (results["n_answered"], results["n_correct"], results["n_parse_failures"]) == (4, 2, 1)
    assert results["n_media_errors"] == 1 and results["n_missing_media"] == 1 and results["n_pending"] == 0
    line = f"{videos}/vid2/vid2_video.mp4: cannot open media (Invalid data found when processing input)"
    assert results["media_errors"] == {"vid2#2": line}  # one line naming the file and the reason
    assert results["accuracy"] == pytest.approx(2 / 4) and results["accuracy_overall"] == pytest.approx(2 / 6)
    assert results["parse_failure_rate"] == pytest.approx(1 / 4)  # the error is no parse failure
    assert not results["complete"]
    row = next(r for r in _lines(out / "predictions.jsonl") if r["qid"] == "vid2#2")
    assert row["error"] == line and "reply" not in row and "pred" not in row  # stored, with its error

    again = _BrokenMedia(scripted, daily_omni_replies, {"vid2#2": "vid2_video.mp4: still broken"})
    results = run_eval(again, "daily_omni", qa, videos, out, progress=False)
    assert again.inner.asked == ["vid2#2"]  # the errored row is not done: asked again, nothing else
    assert results["media_errors"] == {"vid2#2": "vid2_video.mp4: still broken"}  # the latest error stands

    fixed = scripted(daily_omni_replies)
    results = run_eval(fixed, "daily_omni", qa, videos, out, progress=False)
    assert fixed.asked == ["vid2#2"]
    assert results["n_answered"] == 5 and results["n_media_errors"] == 0 and results["n_correct"] == 3
    assert load_predictions(out)["vid2#2"]["pred"] == "B"  # the answer wins over the earlier errors
    assert scripted(daily_omni_replies).asked == []


def test_sharded_media_error_is_retried(daily_omni, daily_omni_replies, scripted, fake_state, tmp_path):
    qa, videos = daily_omni
    out = tmp_path / "run"
    rank1 = _BrokenMedia(scripted, daily_omni_replies, {"vid1#2": "vid1_video.mp4: cannot open media"})
    run_eval(rank1, "daily_omni", qa, videos, out, state=fake_state(1, 2), progress=False)
    results = run_eval(scripted(daily_omni_replies), "daily_omni", qa, videos, out, state=fake_state(0, 2),
                       progress=False)
    assert results["media_errors"] == {"vid1#2": "vid1_video.mp4: cannot open media"}
    assert "error" in load_predictions(out)["vid1#2"]  # the merge keeps the errored row

    rerun = scripted(daily_omni_replies)
    results = run_eval(rerun, "daily_omni", qa, videos, out, progress=False)
    assert rerun.asked == ["vid1#2"] and results["n_media_errors"] == 0


def test_complete_only_when_every_question_has_a_prediction(daily_omni, daily_omni_replies, scripted, tmp_path):
    """963 of 1,000 without media is not a complete run; here 1 of 6, and a limit that leaves questions out."""
    qa, videos = daily_omni
    results = run_eval(scripted(daily_omni_replies), "daily_omni", qa, videos, tmp_path / "run", progress=False)
    assert not results["complete"] and results["n_missing_media"] == 1
    partial = run_eval(scripted(daily_omni_replies), "daily_omni", qa, videos, tmp_path / "two", limit=2,
                       progress=False)
    assert partial["complete"] and partial["n_selected"] == partial["n_answered"] == 2
