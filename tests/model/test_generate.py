"""Latent-aware generation on the tiny Qwen2.5-Omni model. HF greedy parity and generation vs the teacher-forced
pass are tested over both backbone families in test_backbones.py."""

import torch

from latentomni.model.generate import GenerationConfig, generate
from latentomni.model.ospe import latent_position_offsets
from lo_testing import encode_batch, force_trigger_at, make_sample


def _prompts(model, clip_dir):
    samples = [make_sample("a"), make_sample("b", video="clip3.mp4", blocks=((1.0, 2.5),))]
    return encode_batch(model, samples, clip_dir, for_generation=True)


def test_forced_block_has_k_latents_split_visual_then_audio_and_resumes_text(model, clip_dir):
    batch = _prompts(model, clip_dir)
    out = generate(model, batch, GenerationConfig(max_new_tokens=60, output_latents=True),
                   logits_processor=force_trigger_at(model, 3))
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
                   logits_processor=force_trigger_at(model, 1))
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
