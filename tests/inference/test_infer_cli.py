"""``latentomni infer`` end to end on the tiny checkpoint and a rendered clip: the command a user runs first.

Its imports are lazy (``latentomni --help`` must not import torch), so only running it proves they resolve.
"""

import json

import pytest

from latentomni import cli


@pytest.fixture(scope="module")
def ckpt(tiny_base_dir, tmp_path_factory):
    from latentomni.model.wrapper import LatentOmniModel

    out = tmp_path_factory.mktemp("infer_ckpt")
    LatentOmniModel.from_base(tiny_base_dir).save_pretrained(out)
    return out


@pytest.mark.parametrize("options", [None, ["A. red", "B. blue", "C. green", "D. yellow"]])
def test_infer_answers_one_question_as_json(ckpt, clip_dir, capsys, options):
    args = ["infer", "--model", str(ckpt), "--video", str(clip_dir / "clip3.mp4"), "--question",
            "Which colour comes first?", "--max-new-tokens", "12", "--fps", "2", "--max-frames", "4", "--json"]
    assert cli.main(args + (["--options", *options] if options else [])) == 0
    reply = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert isinstance(reply["reply"], str) and reply["n_latent_blocks"] >= 0
    assert reply["settings"]["decoding"]["max_new_tokens"] == 12
    if options:  # a random model rarely states a letter: the answer is a letter or None, never anything else
        assert reply["answer"] in {None, "A", "B", "C", "D"}


def test_infer_names_a_missing_audio_track(ckpt, clip_dir, capsys):
    code = cli.main(["infer", "--model", str(ckpt), "--video", str(clip_dir / "silent.mp4"), "--question", "What?",
                     "--max-new-tokens", "4", "--max-frames", "4"])
    err = capsys.readouterr().err
    assert code in (0, 1)
    if code == 1:  # the predictor may fall back to video only and say so; if it refuses, the line names the file
        assert "silent.mp4" in err and err.count("\n") == 1
