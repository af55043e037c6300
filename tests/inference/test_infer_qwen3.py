"""``latentomni infer`` on a tiny Qwen3-Omni LatentOmni checkpoint: the family comes from the checkpoint's
config.json, nothing on the command line names it."""

import json

from latentomni import cli


def test_infer_answers_on_a_qwen3_checkpoint(tiny_qwen3_dir, clip_dir, tmp_path, capsys):
    from latentomni.model.wrapper import LatentOmniModel

    ckpt = tmp_path / "qwen3_ckpt"
    LatentOmniModel.from_base(tiny_qwen3_dir).save_pretrained(ckpt)
    args = ["infer", "--model", str(ckpt), "--video", str(clip_dir / "clip3.mp4"), "--question",
            "Which colour comes first?", "--options", "A. red", "B. blue", "C. green", "D. yellow",
            "--max-new-tokens", "12", "--fps", "2", "--max-frames", "4", "--json"]
    assert cli.main(args) == 0
    reply = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert isinstance(reply["reply"], str) and reply["n_latent_blocks"] >= 0
    assert reply["answer"] in {None, "A", "B", "C", "D"}
    assert reply["settings"]["decoding"]["max_new_tokens"] == 12 and reply["settings"]["model"] == str(ckpt)
