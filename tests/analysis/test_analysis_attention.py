"""The AV token attention ratio (Fig. 1) on hand-made attention rows, and its alignment on the tiny model of
each backbone family."""

import pytest
import torch

from latentomni.analysis.attention import (
    AUDIO,
    INACTIVE,
    LATENT,
    LATENT_STEP,
    PAD,
    TEXT,
    TEXT_STEP,
    VIDEO,
    KindRatio,
    aggregate,
    attention_ratios,
    force_trigger,
    head_mean,
    key_kinds,
    kind_masses,
    step_kinds,
    trace_attention,
)
from lo_testing import AUDIO_TOKENS_PER_SECOND

V_ID, A_ID, TRIGGER, SLOT, EOS = 7, 8, 9, 11, 3

# A prompt [text, video, video, audio, audio, text], then four steps feeding: a text token, the trigger,
# a latent state, the end-of-turn token (after which the sample is done).
PROMPT = torch.tensor([[1, V_ID, V_ID, A_ID, A_ID, 1]])
FED = torch.tensor([[5, TRIGGER, SLOT, EOS]])
IS_LATENT = torch.tensor([[False, False, True, False]])


def _rows(*per_layer):
    """One step's attentions: per layer a list of per-head rows -> tuple of (1, heads, kv) tensors."""
    return tuple(torch.tensor([heads], dtype=torch.float32) for heads in per_layer)


# Keys: T V V A A T | T(step 0) T(trigger) L(latent) T(eos)
STEPS = [
    # step 0 (text step), 7 keys. layer 0: heads V=.2/A=.2 and V=.4/A=.1; layer 1: A=1 and text=1.
    _rows([[0.5, 0.1, 0.1, 0.1, 0.1, 0.0, 0.1], [0.1, 0.3, 0.1, 0.0, 0.1, 0.2, 0.2]],
          [[0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]),
    # step 1 (feeds the trigger: a latent step), 8 keys. layer 0: V=.5/A=.5 both heads; layer 1: V=1, text=1.
    _rows([[0, 0.25, 0.25, 0.25, 0.25, 0, 0, 0]] * 2,
          [[0, 0.5, 0.5, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1.0]]),
    # step 2 (feeds a latent state), 9 keys: V=.2, A=.2, latent=.6 in every head and layer.
    _rows([[0, 0.2, 0, 0.2, 0, 0, 0, 0, 0.6]] * 2, [[0, 0.2, 0, 0.2, 0, 0, 0, 0, 0.6]] * 2),
    # step 3 (fed the end-of-turn token: inactive), 10 keys, uniform.
    _rows([[0.1] * 10] * 2, [[0.1] * 10] * 2),
]


def _kinds():
    keys = key_kinds(PROMPT, torch.ones_like(PROMPT), IS_LATENT, V_ID, A_ID)
    steps = step_kinds(FED, IS_LATENT, TRIGGER, [EOS, 4])
    return keys, steps


def _close(ratio: KindRatio, n, av, video, audio, latent, text):
    assert ratio.n == n
    got = (ratio.av, ratio.video, ratio.audio, ratio.latent, ratio.text)
    assert got == pytest.approx((av, video, audio, latent, text), abs=1e-6)


def test_key_and_step_kinds():
    keys, steps = _kinds()
    assert keys.tolist() == [[TEXT, VIDEO, VIDEO, AUDIO, AUDIO, TEXT, TEXT, TEXT, LATENT, TEXT]]
    assert steps.tolist() == [[TEXT_STEP, LATENT_STEP, LATENT_STEP, INACTIVE]]
    padded = key_kinds(torch.tensor([[0, 0, V_ID]]), torch.tensor([[0, 0, 1]]), torch.zeros(1, 0, dtype=torch.bool),
                       V_ID, A_ID)
    assert padded.tolist() == [[PAD, PAD, VIDEO]]
    # once done, every later step (the batch keeps feeding padding) is inactive too
    after = step_kinds(torch.tensor([[5, EOS, 0, 0]]), torch.zeros(1, 4, dtype=torch.bool), TRIGGER, [EOS])
    assert after.tolist() == [[TEXT_STEP, INACTIVE, INACTIVE, INACTIVE]]


def test_ratios_averaged_over_all_layers_match_the_hand_computation():
    keys, steps = _kinds()
    (r,) = attention_ratios(STEPS, keys, steps)
    # per step (heads, then layers averaged): step 0 V .15 A .325; step 1 V .5 A .25 text .25; step 2 V .2 A .2 L .6
    _close(r["text"], 1, 0.475, 0.15, 0.325, 0.0, 0.525)
    _close(r["latent"], 2, 0.575, 0.35, 0.225, 0.3, 0.125)
    _close(r["all"], 3, 1.625 / 3, 0.85 / 3, 0.775 / 3, 0.2, 0.775 / 3)


def test_ratios_of_one_layer_and_negative_layer_index():
    keys, steps = _kinds()
    (last,) = attention_ratios(STEPS, keys, steps, layers=1)
    _close(last["text"], 1, 0.5, 0.0, 0.5, 0.0, 0.5)
    _close(last["latent"], 2, 0.45, 0.35, 0.1, 0.3, 0.25)
    assert attention_ratios(STEPS, keys, steps, layers=-1) == [last]
    (first,) = attention_ratios(STEPS, keys, steps, layers=[0])
    _close(first["latent"], 2, 0.7, 0.35, 0.35, 0.3, 0.0)
    with pytest.raises(ValueError, match="out of range"):
        attention_ratios(STEPS, keys, steps, layers=2)


def test_head_mean_keeps_the_ratios_and_rows_are_normalised_by_their_total():
    keys, steps = _kinds()
    (reduced,), (full,) = attention_ratios(head_mean(STEPS), keys, steps), attention_ratios(STEPS, keys, steps)
    assert all(reduced[g].as_dict() == pytest.approx(full[g].as_dict()) for g in full)
    doubled = [tuple(2 * a for a in layer_rows) for layer_rows in STEPS]  # e.g. rows that do not sum to 1
    assert torch.allclose(kind_masses(doubled, keys), kind_masses(STEPS, keys))
    with pytest.raises(ValueError, match="key_kinds covers"):
        kind_masses(STEPS, keys[:, :8])


def test_a_sample_without_latent_steps_has_none_for_them():
    keys, _ = _kinds()
    (r,) = attention_ratios(STEPS[:1], keys, torch.tensor([[TEXT_STEP]]))
    assert r["latent"] is None and r["text"] == r["all"]


def test_aggregate_means_over_samples_per_task_in_order():
    def kr(n, av):
        return KindRatio(n, av, av / 2, av / 2, 0.1, 0.9 - av)

    samples = [
        ("Inference", {"latent": kr(41, 0.6), "text": kr(5, 0.2), "all": kr(46, 0.5)}),
        ("Inference", {"latent": None, "text": kr(9, 0.4), "all": kr(9, 0.4)}),
        ("Reasoning", {"latent": kr(41, 0.8), "text": kr(3, 0.1), "all": kr(44, 0.7)}),
    ]
    table = aggregate(samples, order=("Reasoning", "Inference"))
    assert list(table) == ["Reasoning", "Inference", "all tasks"]
    assert table["Inference"]["latent"].n == 1 and table["Inference"]["latent"].av == pytest.approx(0.6)
    assert table["Inference"]["text"].n == 2 and table["Inference"]["text"].av == pytest.approx(0.3)
    assert table["all tasks"]["all"].n == 3 and table["all tasks"]["all"].av == pytest.approx(1.6 / 3)
    assert aggregate([]) == {}
    # a multi-label sample counts once in each of its groups and once in the pool
    multi = aggregate([(["Speech", "Music"], samples[0][1]), ("Music", samples[2][1])])
    assert [multi[g]["all"].n for g in ("Music", "Speech", "all tasks")] == [2, 1, 2]


def test_force_trigger_only_at_its_step():
    process = force_trigger(TRIGGER, at_step=2)
    logits = torch.randn(2, 16)
    assert process(1, logits) is logits
    assert process(2, logits).argmax(-1).tolist() == [TRIGGER, TRIGGER]


def test_generation_attention_lines_up_with_the_teacher_forced_rows(family, family_base_dir, clip_dir):
    """On each family: step s of generation is the query at position L + s of the whole sequence; its masses,
    read with key_kinds/step_kinds, equal those read from the teacher-forced pass's attention at that position
    (on Qwen3-Omni: the mixture-of-experts text model, the interleaved audio-in-video prompt, DeepStack inputs).
    The trace reads the audio timeline by the backbone's token spans."""
    from latentomni.config import LatentConfig
    from latentomni.data.collate import SampleEncoder, collate
    from latentomni.data.features import MediaSettings
    from latentomni.data.questions import prompt_sample
    from latentomni.model.generate import GenerationConfig, generate
    from latentomni.model.wrapper import LatentOmniModel

    torch.manual_seed(0)
    model = LatentOmniModel.from_base(family_base_dir, LatentConfig(num_latents=4, num_visual=2, num_audio=2),
                                      attn_implementation="eager").eval()
    assert model.backbone.family == family
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
    per_second = AUDIO_TOKENS_PER_SECOND[family]
    n_audio = int((prompt["input_ids"] == cfg.audio_token_id).sum())
    assert starts.numel() == n_audio and 3 * per_second <= n_audio <= 3 * per_second + 1  # a 3-second track
    assert float(starts[2 * per_second]) == 2.0 and 3.0 <= float(ends[-1]) <= 3.1
    (r,) = attention_ratios(out.attentions, keys, steps)
    for group, ratio in r.items():
        assert ratio.av + ratio.latent + ratio.text == pytest.approx(1.0, abs=1e-5)
        assert trace.ratios()[group].as_dict() == pytest.approx(ratio.as_dict(), abs=1e-6)
    assert 0 < r["latent"].av < 1 and r["latent"].latent > 0
