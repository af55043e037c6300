"""``latentomni analyze attention`` / ``analyze compare`` on the tiny model (a single clip on both backbone
families), through the real entry point."""

import json
import shutil

import pytest

from latentomni import cli
from lo_testing import AUDIO_TOKENS_PER_SECOND

FAST = ["--set", "max_pixels=3136", "--set", "max_new_tokens=10"]


def _k4_checkpoint(base_dir, out):
    """A LatentOmni checkpoint with K=4 (2 visual, 2 audio) so a forced block costs five steps."""
    from latentomni.config import LatentConfig
    from latentomni.model.wrapper import LatentOmniModel

    k4 = LatentConfig(num_latents=4, num_visual=2, num_audio=2)
    LatentOmniModel.from_base(base_dir, k4).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def ckpt(tiny_base_dir, tmp_path_factory):
    return _k4_checkpoint(tiny_base_dir, tmp_path_factory.mktemp("ckpt_k4"))


@pytest.fixture(scope="module")
def qwen3_ckpt(tiny_qwen3_dir, tmp_path_factory):
    return _k4_checkpoint(tiny_qwen3_dir, tmp_path_factory.mktemp("qwen3_ckpt_k4"))


@pytest.fixture
def family_ckpt(family, request):
    """The K=4 checkpoint of ``family`` (tests/conftest.py's ``family`` runs over both backbones)."""
    return request.getfixturevalue("ckpt" if family == "qwen2.5-omni" else "qwen3_ckpt")


def test_single_clip_writes_ratio_json_and_heatmaps(family, family_ckpt, clip_dir, tmp_path, capsys, monkeypatch):
    """On each family; the audio heatmap reads the timeline by the backbone's token spans."""
    from latentomni.analysis import heatmaps

    spans_seen = []
    plot = heatmaps.plot_audio_timeline

    def spy(mass, spans, *args, **kwargs):
        spans_seen.append((mass.size, [s.clone() for s in spans]))
        return plot(mass, spans, *args, **kwargs)

    monkeypatch.setattr(heatmaps, "plot_audio_timeline", spy)
    out = tmp_path / "one"
    code = cli.main(["analyze", "attention", "--model", str(family_ckpt), "--video", str(clip_dir / "clip4.mp4"),
                     "--question", "What colour?", "--options", "A. red", "B. blue", "--force-latent",
                     "--top-k", "2", "--out", str(out), *FAST])
    assert code == 0
    report = json.loads((out / "ratio.json").read_text())
    assert report["n_latent_blocks"] == 1 and "<Unified_Latent>[4 latents]</Unified_Latent>" in report["reply"]
    latent, text, every = (report["ratios"][g] for g in ("latent", "text", "all"))
    assert latent["n"] == 5 and every["n"] == latent["n"] + text["n"]
    for r in (latent, text, every):
        assert 0 < r["av"] < 1 and r["av"] == pytest.approx(r["video"] + r["audio"])
        assert 0 < r["video"] < 1 and 0 < r["audio"] < 1
        assert r["av"] + r["latent"] + r["text"] == pytest.approx(1.0, abs=1e-5)
    assert len(report["per_layer"]) == 4 and report["settings"]["layers"] == "all"
    assert report["settings"]["force_latent_at"] == 1
    assert [s["kind"] for s in report["steps"][:7]] == ["text", *["latent"] * 5, "text"]
    assert report["steps"][2]["fed"] == "<latent state>"
    names = {"video_latent.png", "audio_latent.png", "top_frames_latent.png", "video_text.png", "audio_text.png"}
    assert names <= set(report["heatmaps"])
    assert all((out / n).stat().st_size > 1000 for n in report["heatmaps"])
    # the 4-second clip's track (AAC adds a few ms, which may add a token): token k * (tokens a second) opens
    # second k, the last ends where the track does
    per_second = AUDIO_TOKENS_PER_SECOND[family]
    n, (starts, ends) = spans_seen[0]
    assert 4 * per_second <= n <= 4 * per_second + 1 and starts.numel() == n
    assert [float(starts[per_second * k]) for k in range(4)] == [0.0, 1.0, 2.0, 3.0] and 4.0 <= float(ends[-1]) <= 4.1
    assert "latent steps (n=5): AV" in capsys.readouterr().out


def _daily_omni(tmp_path, clip_dir):
    records = [
        {"Question": "Which colour comes first?", "Choice": ["A. red", "B. blue", "C. green", "D. yellow"],
         "Answer": "A", "video_id": "v1", "Type": "Event Sequence", "video_duration": "30s"},
        {"Question": "What is missing?", "Choice": ["A. x", "B. y", "C. z", "D. w"], "Answer": "B",
         "video_id": "gone", "Type": "Inference", "video_duration": "30s"},
        {"Question": "Why the tone?", "Choice": ["A. x", "B. y", "C. z", "D. w"], "Answer": "C",
         "video_id": "v2", "Type": "AV Event Alignment", "video_duration": "60s"},
    ]
    qa = tmp_path / "qa.json"
    qa.write_text(json.dumps(records))
    for vid, clip in (("v1", "clip3.mp4"), ("v2", "clip4.mp4")):
        (tmp_path / "Videos" / vid).mkdir(parents=True)
        shutil.copy(clip_dir / clip, tmp_path / "Videos" / vid / f"{vid}_video.mp4")
    return qa, tmp_path / "Videos"


def test_benchmark_mode_groups_by_task_type_and_compare_plots_runs(ckpt, clip_dir, tmp_path, capsys):
    qa, videos = _daily_omni(tmp_path, clip_dir)
    out = tmp_path / "bench"
    code = cli.main(["analyze", "attention", "--model", str(ckpt), "--benchmark", "daily-omni", "--annotations",
                     str(qa), "--media-root", str(videos), "--limit", "3", "--layer", "-1", "--force-latent", "2",
                     "--out", str(out), *FAST])
    assert code == 0
    table = json.loads((out / "task_ratios.json").read_text())
    assert table["group_by"] == "task_type" and table["n_samples"] == 2 and list(table["skipped"]) == ["gone#1"]
    # the paper's Type order first, then the pooled row
    assert list(table["groups"]) == ["AV Event Alignment", "Event Sequence", "all tasks"]
    pooled = table["groups"]["all tasks"]
    assert pooled["latent"]["n"] == 2 and 0 < pooled["latent"]["av"] < 1
    assert table["settings"]["layers"] == -1 and table["settings"]["predictor"]["max_pixels"] == 3136
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    expected = [("v1#1", ["Event Sequence"]), ("v2#1", ["AV Event Alignment"])]
    assert [(s["qid"], s["groups"]) for s in samples] == expected
    assert all("correct" in s and s["n_latent_blocks"] == 1 for s in samples)
    assert (out / "task_ratios.png").stat().st_size > 1000
    capsys.readouterr()

    code = cli.main(["analyze", "compare", str(out), str(out / "task_ratios.json"), "--labels", "LatentOmni",
                     "Text CoT", "--steps", "latent", "--out", str(tmp_path / "cmp")])
    assert code == 0
    cmp = json.loads((tmp_path / "cmp" / "attention_comparison.json").read_text())
    assert list(cmp["series"]) == ["LatentOmni", "Text CoT"]
    assert cmp["series"]["LatentOmni"]["all tasks"] == pooled["latent"]["av"]
    assert (tmp_path / "cmp" / "attention_comparison.png").is_file()


def test_argument_errors(ckpt, clip_dir, tmp_path, capsys):
    base = ["analyze", "attention", "--model", str(ckpt)]
    assert cli.main([*base, "--video", str(clip_dir / "clip3.mp4")]) == 2
    assert "--video needs --question" in capsys.readouterr().err
    assert cli.main([*base, "--benchmark", "daily_omni", "--media-root", str(tmp_path)]) == 2
    assert "--benchmark needs --annotations" in capsys.readouterr().err
    assert cli.main([*base, "--video", str(clip_dir / "clip3.mp4"), "--question", "q", "--layer", "7", *FAST]) == 1
    assert "out of range for a model with 4 layers" in capsys.readouterr().err
    assert cli.main(["analyze", "compare", str(tmp_path)]) == 2
    assert "task_ratios.json not found" in capsys.readouterr().err


def test_force_latent_works_on_the_committed_tiny_base(clip_dir, tmp_path, capsys):
    """The committed tiny base is a checkpoint with latent_mode off: --force-latent switches latent decoding
    on (K=40 from the checkpoint), draws the latent heatmaps, and records that it did."""
    from latentomni.demo.base import ASSET_DIR

    assert json.loads((ASSET_DIR / "latentomni.json").read_text())["latent"]["latent_mode"] is False
    out = tmp_path / "base"
    code = cli.main(["analyze", "attention", "--model", str(ASSET_DIR), "--video", str(clip_dir / "clip3.mp4"),
                     "--question", "What colour?", "--force-latent", "--out", str(out), "--no-spatial",
                     "--set", "max_pixels=3136", "--set", "max_new_tokens=44"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "ratio.json").read_text())
    assert report["n_latent_blocks"] == 1 and "<Unified_Latent>[40 latents]</Unified_Latent>" in report["reply"]
    assert report["ratios"]["latent"]["n"] == 41  # the trigger and its 40 latent steps
    assert report["settings"]["latent_mode_forced"] is True
    assert report["settings"]["predictor"]["latent"]["latent_mode"] is True
    assert {"video_latent.png", "audio_latent.png"} <= set(report["heatmaps"])


def test_without_force_latent_a_latent_off_checkpoint_stays_as_it_is(clip_dir, tmp_path):
    from latentomni.demo.base import ASSET_DIR

    out = tmp_path / "plain"
    assert cli.main(["analyze", "attention", "--model", str(ASSET_DIR), "--video", str(clip_dir / "clip3.mp4"),
                     "--question", "What colour?", "--out", str(out), "--no-spatial", *FAST]) == 0
    report = json.loads((out / "ratio.json").read_text())
    assert report["n_latent_blocks"] == 0 and report["settings"]["latent_mode_forced"] is False
    assert report["settings"]["predictor"]["latent"]["latent_mode"] is False
