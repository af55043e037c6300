"""``latentomni analyze attention`` on a tiny Qwen3-Omni checkpoint: the trace reads the audio timeline by the
backbone's spans (13 tokens per 1-second window), and generation's attention rows are the teacher-forced ones
(mixture-of-experts text model, DeepStack features in the prompt)."""

import json

import pytest
import torch

from latentomni import cli
from latentomni.analysis.attention import (
    LATENT_STEP,
    attention_ratios,
    force_trigger,
    key_kinds,
    kind_masses,
    step_kinds,
    trace_attention,
)

FAST = ["--set", "max_pixels=3136", "--set", "max_new_tokens=10"]


@pytest.fixture(scope="module")
def qwen3_ckpt(tiny_qwen3_dir, tmp_path_factory):
    """A Qwen3-Omni LatentOmni checkpoint with K=4 (2 visual, 2 audio) so a forced block costs five steps."""
    from latentomni.config import LatentConfig
    from latentomni.model.wrapper import LatentOmniModel

    out = tmp_path_factory.mktemp("qwen3_ckpt_k4")
    k4 = LatentConfig(num_latents=4, num_visual=2, num_audio=2)
    LatentOmniModel.from_base(tiny_qwen3_dir, k4).save_pretrained(out)
    return out


def test_analyze_attention_on_qwen3_writes_ratios_and_heatmaps(qwen3_ckpt, clip_dir, tmp_path, capsys,
                                                              monkeypatch):
    from latentomni.analysis import heatmaps

    spans_seen = []
    plot = heatmaps.plot_audio_timeline

    def spy(mass, spans, *args, **kwargs):
        spans_seen.append((mass.size, [s.clone() for s in spans]))
        return plot(mass, spans, *args, **kwargs)

    monkeypatch.setattr(heatmaps, "plot_audio_timeline", spy)
    out = tmp_path / "one"
    code = cli.main(["analyze", "attention", "--model", str(qwen3_ckpt), "--video", str(clip_dir / "clip4.mp4"),
                     "--question", "What colour?", "--options", "A. red", "B. blue", "--force-latent",
                     "--top-k", "2", "--out", str(out), *FAST])
    assert code == 0
    report = json.loads((out / "ratio.json").read_text())
    assert report["n_latent_blocks"] == 1 and "<Unified_Latent>[4 latents]</Unified_Latent>" in report["reply"]
    latent, text, every = (report["ratios"][g] for g in ("latent", "text", "all"))
    assert latent["n"] == 5 and every["n"] == latent["n"] + text["n"]
    for r in (latent, text, every):
        assert 0 < r["video"] < 1 and 0 < r["audio"] < 1
        assert r["av"] + r["latent"] + r["text"] == pytest.approx(1.0, abs=1e-5)
    assert len(report["per_layer"]) == 4
    names = {"video_latent.png", "audio_latent.png", "top_frames_latent.png", "video_text.png", "audio_text.png"}
    assert names <= set(report["heatmaps"])
    assert all((out / n).stat().st_size > 1000 for n in report["heatmaps"])
    # the 4-second clip's track (AAC adds a few ms, which may add a token): 13 tokens a second, token 13k opens
    # window k, the last ends where the track does
    n, (starts, ends) = spans_seen[0]
    assert 52 <= n <= 53 and starts.numel() == n
    assert [float(starts[13 * k]) for k in range(4)] == [0.0, 1.0, 2.0, 3.0] and 4.0 <= float(ends[-1]) <= 4.1
    assert "latent steps (n=5): AV" in capsys.readouterr().out


def test_qwen3_generation_attention_lines_up_with_the_teacher_forced_rows(tiny_qwen3_dir, clip_dir):
    """As for Qwen2.5-Omni (tests/analysis/test_analysis_attention.py): step s of generation is the query at
    position L + s of the whole sequence, on the interleaved audio-in-video prompt with DeepStack inputs."""
    from latentomni.config import LatentConfig
    from latentomni.data.collate import SampleEncoder, collate
    from latentomni.data.features import MediaSettings
    from latentomni.data.questions import prompt_sample
    from latentomni.model.generate import GenerationConfig, generate
    from latentomni.model.wrapper import LatentOmniModel

    torch.manual_seed(0)
    model = LatentOmniModel.from_base(tiny_qwen3_dir, LatentConfig(num_latents=4, num_visual=2, num_audio=2),
                                      attn_implementation="eager").eval()
    assert model.backbone.family == "qwen3-omni"
    t, cfg = model.token_ids, model.config
    enc = SampleEncoder.for_model(model, MediaSettings(max_pixels=56 * 56))
    encoded = enc.encode(prompt_sample("What colour?", clip_dir / "clip3.mp4"), clip_dir, for_generation=True)
    prompt = collate([encoded], model.processor.tokenizer.pad_token_id, padding_side="left")
    out = generate(model, prompt, GenerationConfig(max_new_tokens=10, output_attentions=True, output_latents=True),
                   logits_processor=force_trigger(t.start, 1))
    n = len(out.attentions)
    keys = key_kinds(prompt["input_ids"], prompt["attention_mask"], out.step_is_latent[:, :n], cfg.video_token_id,
                     cfg.audio_token_id)
    steps = step_kinds(out.sequences[:, :n], out.step_is_latent[:, :n], t.start, [])
    assert (steps == LATENT_STEP).sum() == 5, "the trigger and K=4 latent states"

    ids = torch.cat([prompt["input_ids"][0], out.sequences[0, :n]]).unsqueeze(0)
    slot_index = torch.full_like(ids, -1)
    slot_pos = (ids[0] == t.slot).nonzero().flatten()
    slot_index[0, slot_pos] = torch.arange(len(slot_pos))
    batch = {**prompt, "input_ids": ids, "attention_mask": torch.ones_like(ids), "slot_index": slot_index}
    with torch.no_grad():
        _, _, full = model.teacher_forced_hidden(batch, slot_inputs=out.latents[0], output_attentions=True)
    length = prompt["input_ids"].shape[1]
    full_steps = [tuple(a[:, :, length + s, : length + s + 1] for a in full) for s in range(n)]
    assert torch.allclose(kind_masses(full_steps, keys), kind_masses(out.attentions, keys), atol=1e-4)

    trace = trace_attention(model, prompt, GenerationConfig(max_new_tokens=10), force_latent_at=1)
    assert trace.backbone is model.backbone
    starts, ends = trace.audio_token_spans()
    n_audio = int((prompt["input_ids"] == cfg.audio_token_id).sum())
    assert starts.numel() == n_audio and 39 <= n_audio <= 40  # a 3-second track, 13 tokens a second
    assert float(starts[26]) == 2.0 and 3.0 <= float(ends[-1]) <= 3.1
    (r,) = attention_ratios(out.attentions, keys, steps)
    for group, ratio in r.items():
        assert trace.ratios()[group].as_dict() == pytest.approx(ratio.as_dict(), abs=1e-6)
    assert 0 < r["latent"].av < 1 and r["latent"].latent > 0
