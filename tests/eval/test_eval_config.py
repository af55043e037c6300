"""The typed evaluation config (``latentomni eval --config``): one-line errors naming the file or ``--set`` and
the field, per-benchmark decoding overrides, and media defaults from the checkpoint's training config."""

from __future__ import annotations

import json

import pytest

from latentomni import cli
from latentomni.eval import cli as eval_cli
from latentomni.eval.config import CHECKPOINT, DEFAULT, EVAL_CONFIG, EvalConfig, EvalConfigError, load_eval_config


def _config(tmp_path, text: str):
    path = tmp_path / "eval.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, sets, message", [
    ("media: {fps: -1}\n", [], r"eval.yaml: media.fps: Input should be greater than 0"),
    ("decoding: {max_new_tokens: many}\n", [], r"eval.yaml: decoding.max_new_tokens: Input should be a valid integer"),
    ("decoding: {attention_flow: sideways}\n", [], r"eval.yaml: decoding.attention_flow: Input should be 'causal'"),
    ("batch_size: 0\n", [], r"eval.yaml: batch_size: Input should be greater than or equal to 1"),
    ("max_new_tokens: 64\n", [],
     r"eval.yaml: max_new_tokens: unknown setting \(did you mean decoding.max_new_tokens\?\)"),
    ("benchmarks: {mmlu: {decoding: {max_new_tokens: 8}}}\n", [], r"eval.yaml: benchmarks: unknown benchmark 'mmlu'"),
    ("benchmarks: {videomme: {decoding: {max_new_token: 8}}}\n", [],
     r"eval.yaml: benchmarks.videomme.decoding.max_new_token: unknown setting \(did you mean "
     r"benchmarks.videomme.decoding.max_new_tokens\?\)"),
    ("benchmarks: {videomme: {}, Video-MME: {}}\n", [],
     r"eval.yaml: benchmarks: 'Video-MME' names 'videomme' a second"),
    ("media: {fps: 2}\n", ["media.fps=fast"], r"^--set media.fps=fast: media.fps: Input should be a valid number"),
    ("media: {fps: 2}\n", ["media.fps.x=1"], r"^--set media.fps.x=1: media.fps is not a section"),
    ("media: {fps: 2}\n", ["fps"], r"^--set expects KEY=VALUE, got 'fps'"),
    ("- 1\n", [], r"eval.yaml: expected a mapping of settings, got list"),
])
def test_a_bad_config_is_one_line_naming_the_file_or_set_and_the_field(tmp_path, text, sets, message):
    with pytest.raises(EvalConfigError, match=message) as err:
        load_eval_config(_config(tmp_path, text), sets)
    assert "\n" not in str(err.value)


def test_a_benchmark_section_overrides_only_the_decoding_keys_it_names(tmp_path):
    config = load_eval_config(_config(tmp_path, "decoding: {max_new_tokens: 256, temperature: 0.5}\n"
                                                "benchmarks:\n  Video-MME: {decoding: {max_new_tokens: 64}}\n"),
                              ["benchmarks.daily_omni.decoding.max_latent_blocks=2"])
    videomme, videomme_from = config.predictor_kwargs("videomme")
    assert videomme["max_new_tokens"] == 64 and videomme["temperature"] == 0.5 and videomme["max_latent_blocks"] == 4
    assert videomme_from["decoding.max_new_tokens"] == "benchmarks.videomme"
    assert videomme_from["decoding.temperature"] == EVAL_CONFIG and videomme_from["decoding.top_p"] == DEFAULT
    daily, daily_from = config.predictor_kwargs("Daily-Omni")
    assert daily["max_new_tokens"] == 256 and daily["max_latent_blocks"] == 2
    assert daily_from["decoding.max_latent_blocks"] == "benchmarks.daily_omni"
    other, _ = config.predictor_kwargs("worldsense")
    assert other["max_new_tokens"] == 256 and other["max_latent_blocks"] == 4


def test_media_defaults_come_from_the_checkpoints_training_config(tmp_path):
    """What the model was trained with, unless the eval config says otherwise; never the test-time controls."""
    media = {"fps": 1.0, "max_frames": 32, "max_pixels": 3136, "use_audio_in_video": False, "zero_audio": True,
             "max_audio_seconds": None}
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "train_config.json").write_text(json.dumps({"data": {"media": media}}))
    from latentomni.eval.config import checkpoint_media

    trained = checkpoint_media(ckpt)
    assert trained == {k: media[k] for k in ("fps", "max_frames", "max_pixels", "use_audio_in_video",
                                             "max_audio_seconds")}
    kwargs, sources = load_eval_config(_config(tmp_path, "media: {fps: 4.0}\n"), []).predictor_kwargs("world", trained)
    assert (kwargs["fps"], sources["media.fps"]) == (4.0, EVAL_CONFIG)
    assert (kwargs["max_frames"], sources["media.max_frames"]) == (32, CHECKPOINT)
    assert (kwargs["use_audio_in_video"], sources["media.use_audio_in_video"]) == (False, CHECKPOINT)
    assert (kwargs["zero_audio"], sources["media.zero_audio"]) == (False, DEFAULT)
    assert checkpoint_media(tmp_path / "no-such-ckpt") is None
    kwargs, sources = EvalConfig().predictor_kwargs("world", None)
    assert kwargs["max_frames"] == 256 and set(sources.values()) == {DEFAULT}


def test_the_eval_command_applies_the_checkpoint_media_and_says_so(daily_omni, scripted, tmp_path, monkeypatch,
                                                                   capsys):
    qa, videos = daily_omni
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "train_config.json").write_text(json.dumps({"data": {"media": {"fps": 1.0, "max_frames": 16}}}))
    made = {}

    def factory(model_dir, settings):
        made.update(settings)
        return scripted({}, settings={"model": model_dir, **settings})

    monkeypatch.setattr(eval_cli, "make_predictor", factory)
    config = _config(tmp_path, "media: {max_frames: 64}\nbenchmarks: {daily_omni: {decoding: {max_new_tokens: 7}}}\n")
    out = tmp_path / "out"
    assert cli.main(["eval", "--model", str(ckpt), "--benchmark", "daily_omni", "--annotations", str(qa),
                     "--media-root", str(videos), "--out", str(out), "--config", str(config), "--no-progress"]) == 0
    assert (made["fps"], made["max_frames"], made["max_new_tokens"]) == (1.0, 64, 7)
    results = json.loads((out / "results.json").read_text())
    assert results["settings_from"]["media.fps"] == CHECKPOINT and results["settings_from"]["media.max_frames"] == \
        EVAL_CONFIG
    assert results["predictor"]["fps"] == 1.0, "the predictor's own account is in the results too"
    assert json.loads((out / "settings.json").read_text())["settings_from"] == results["settings_from"]
    printed = capsys.readouterr().out
    assert f"media settings from: {CHECKPOINT} (fps); " in printed and f"{EVAL_CONFIG} (max_frames)" in printed


def test_every_predictor_kwarg_is_a_parameter_of_the_predictor():
    from latentomni.inference.predictor import LatentOmniPredictor
    from latentomni.inference.settings import check_settings

    kwargs, _ = EvalConfig().predictor_kwargs("videomme")
    check_settings(LatentOmniPredictor, kwargs)
