"""Latent-aware generation on the tiny model."""

import pytest
import torch

from latentomni.model.generate import GenerationConfig, generate
from latentomni.model.ospe import latent_position_offsets
from lo_testing import encode_batch, make_sample


def _prompts(model, clip_dir):
    samples = [make_sample("a"), make_sample("b", video="clip3.mp4", blocks=((1.0, 2.5),))]
    return encode_batch(model, samples, clip_dir, for_generation=True)


def _force_trigger_at(model, step):
    def process(s, logits):
        if s == step:
            logits[:, model.token_ids.start] = 1e4
        return logits
    return process


def test_without_trigger_output_equals_hf_greedy(model, clip_dir):
    batch = _prompts(model, clip_dir)
    assert batch["attention_mask"][1].eq(0).any(), "the batch is left-padded"
    ours = generate(model, batch, GenerationConfig(max_new_tokens=24))
    assert ours.num_blocks == [0, 0]
    hf = model.thinker.generate(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
        pixel_values_videos=batch["pixel_values_videos"], video_grid_thw=batch["video_grid_thw"],
        video_second_per_grid=batch["video_second_per_grid"], input_features=batch["input_features"],
        feature_attention_mask=batch["feature_attention_mask"], use_audio_in_video=True,
        do_sample=False, max_new_tokens=24)
    hf_new = hf[:, batch["input_ids"].shape[1]:]
    assert torch.equal(ours.sequences[:, : hf_new.shape[1]], hf_new)


def test_forced_block_has_k_latents_split_visual_then_audio_and_resumes_text(model, clip_dir):
    batch = _prompts(model, clip_dir)
    out = generate(model, batch, GenerationConfig(max_new_tokens=60, output_latents=True),
                   logits_processor=_force_trigger_at(model, 3))
    t, k = model.token_ids, model.latent.num_latents
    for row, text, lat in zip(out.sequences.tolist(), out.texts, out.latents, strict=True):
        start = row.index(t.start)
        assert start == 3
        assert row[start + 1: start + 1 + k] == [t.slot] * k
        assert row[start + 1 + k] == t.end
        assert t.slot not in row[start + 2 + k:], "text resumes after the block"
        assert "<Unified_Latent>[40 latents]</Unified_Latent>" in text
        assert lat.shape == (k, model.config.text_config.hidden_size)
    # the first Kv latent inputs are visual, then Ka audio: the loop spent exactly K latent steps per block
    assert out.step_is_latent.sum(1).tolist() == [k, k]
    assert out.num_blocks == [1, 1]


@pytest.mark.parametrize("flow", ["causal", "through_latents"])
def test_generation_matches_the_teacher_forced_forward(model, clip_dir, flow):
    """Feeding the generated sequence (with its own latents at the slots) through the training forward
    reproduces every latent and every free token: same positions (OSPE), same masks, same cache semantics."""
    model.latent.attention_flow = flow
    t = model.token_ids
    samples = [make_sample("b", video="clip3.mp4", blocks=((1.0, 2.5),))]
    prompt = encode_batch(model, samples, clip_dir, for_generation=True)
    out = generate(model, prompt, GenerationConfig(max_new_tokens=56, output_latents=True),
                   logits_processor=_force_trigger_at(model, 2))
    gen = out.sequences[0]
    n_prompt = prompt["input_ids"].shape[1]
    ids = torch.cat([prompt["input_ids"][0], gen[:-1]]).unsqueeze(0)
    slot_index = torch.full_like(ids, -1)
    slot_pos = (ids[0] == t.slot).nonzero().flatten()
    slot_index[0, slot_pos] = torch.arange(len(slot_pos)) % model.latent.num_latents
    batch = {**prompt, "input_ids": ids, "attention_mask": torch.ones_like(ids), "slot_index": slot_index}
    with torch.no_grad():
        hidden, _, _ = model.teacher_forced_hidden(batch, slot_inputs=out.latents[0])
    assert torch.allclose(hidden[0, slot_pos - 1], out.latents[0], atol=1e-4)
    # Every position whose next generated token was chosen by the LM head (not forced, not a latent).
    pos = torch.arange(n_prompt - 1, n_prompt - 1 + len(gen))
    nxt = gen
    free = (ids[0, pos] != t.slot) & ~torch.isin(nxt, torch.tensor([t.slot, t.end, t.start]))
    logits = model.thinker.lm_head(hidden[0, pos[free]])
    assert free.sum() > 10
    assert torch.equal(logits.argmax(-1), nxt[free])


def _media_attention_after_block(attentions, media, query_pos):
    return torch.stack([a[0, :, query_pos][:, :, media].sum(-1) for a in attentions])


def test_through_latents_text_after_the_trigger_gives_media_no_attention(model, clip_dir):
    model.thinker.set_attn_implementation("eager")
    batch = encode_batch(model, [make_sample("a")], clip_dir)
    ids = batch["input_ids"][0]
    media = model.media_key_mask(ids)
    slots = (batch["slot_index"][0] >= 0).nonzero().flatten()
    after = torch.arange(int(slots[-1]) + 1, len(ids))  # </Unified_Latent> and the text that follows
    with torch.no_grad():
        model.latent.attention_flow = "through_latents"
        _, _, att = model.teacher_forced_hidden(batch, output_attentions=True)
        assert _media_attention_after_block(att, media, after).max() == 0
        assert _media_attention_after_block(att, media, slots).min() > 0, "latent slots still see the media"
        model.latent.attention_flow = "causal"
        _, _, att = model.teacher_forced_hidden(batch, output_attentions=True)
        assert _media_attention_after_block(att, media, after).min() > 0


def test_through_latents_applies_in_generation_too(model, clip_dir):
    model.thinker.set_attn_implementation("eager")
    model.latent.attention_flow = "through_latents"
    prompt = encode_batch(model, [make_sample("a")], clip_dir, for_generation=True)
    out = generate(model, prompt, GenerationConfig(max_new_tokens=50, output_attentions=True),
                   logits_processor=_force_trigger_at(model, 1))
    n = prompt["input_ids"].shape[1]
    media = model.media_key_mask(prompt["input_ids"][0])
    # out.attentions[s] belongs to the step that fed generated token s (0-based): step 1 feeds the trigger.
    for s, layers in enumerate(out.attentions, start=0):
        fed_latent = bool(out.step_is_latent[0, s])
        fed = int(out.sequences[0, s])
        mass = torch.stack([a[0, :, :n][:, media].sum(-1) for a in layers])
        if fed_latent or fed == model.token_ids.start:
            assert mass.min() > 0
        elif s > 1:
            assert mass.max() == 0, f"step {s} (token {fed}) after the trigger read the media"


def test_sampling_is_reproducible_with_a_seed(model, clip_dir):
    batch = _prompts(model, clip_dir)
    cfg = GenerationConfig(max_new_tokens=12, do_sample=True, temperature=1.5, top_p=0.9, seed=7)
    assert torch.equal(generate(model, batch, cfg).sequences, generate(model, batch, cfg).sequences)


def test_trigger_is_suppressed_after_max_blocks(model, clip_dir):
    batch = _prompts(model, clip_dir)

    def always(step, logits):
        logits[:, model.token_ids.start] = 1e4
        return logits
    out = generate(model, batch, GenerationConfig(max_new_tokens=120, max_latent_blocks=2), logits_processor=always)
    assert out.num_blocks == [2, 2]


def test_latent_positions_in_generation_use_the_ospe_offsets(model):
    offs = latent_position_offsets(model.latent)
    assert offs[32] == offs[0] and offs[33] == offs[4]
