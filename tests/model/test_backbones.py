"""The core model tests over both backbone families (tiny Qwen2.5-Omni and tiny Qwen3-Omni thinkers): HF parity,
decoding vs the teacher-forced pass, positions, padding, gradients, persistence; and the family facts."""

import pytest
import torch

from latentomni.model.backbone import Qwen3Omni, Qwen25Omni, backbone_class, backbone_for
from latentomni.model.generate import GenerationConfig, generate
from latentomni.model.wrapper import LatentOmniModel
from lo_testing import encode_batch, force_trigger_at, make_sample


def _two_samples():
    return [make_sample("a", blocks=((0.0, 2.0), (2.0, 4.0))),
            make_sample("b", video="clip3.mp4", blocks=((1.0, 2.5),))]


def _hf_generate(model, batch, n):
    return model.thinker.generate(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
        pixel_values_videos=batch["pixel_values_videos"], video_grid_thw=batch["video_grid_thw"],
        video_second_per_grid=batch["video_second_per_grid"], input_features=batch["input_features"],
        feature_attention_mask=batch["feature_attention_mask"], use_audio_in_video=True,
        do_sample=False, max_new_tokens=n)[:, batch["input_ids"].shape[1]:]


# -- family facts -----------------------------------------------------------------------------------------
def test_backbone_is_read_from_the_checkpoint_config(tiny_base_dir, tiny_qwen3_dir):
    q25, q3 = backbone_for(tiny_base_dir), backbone_for(tiny_qwen3_dir)
    assert isinstance(q25, Qwen25Omni) and isinstance(q3, Qwen3Omni)
    assert (q25.audio_tokens_per_second, q25.position_ids_per_second) == (25.0, 25.0)
    # Qwen3-Omni: 13 audio tokens per 1-second window, and the config's (not the config class's) 13 ids/s
    assert (q3.audio_tokens_per_second, q3.position_ids_per_second) == (13.0, 13.0)
    assert backbone_class("qwen3_omni_moe") is Qwen3Omni and backbone_class("qwen2_5_omni") is Qwen25Omni
    with pytest.raises(ValueError, match="not a supported backbone"):
        backbone_class("llama")


def test_qwen3_config_gets_the_vision_start_id_from_the_tokenizer(tiny_qwen3_dir):
    from transformers import Qwen3OmniMoeProcessor, Qwen3OmniMoeThinkerConfig

    config = Qwen3OmniMoeThinkerConfig.from_pretrained(tiny_qwen3_dir)
    del config.vision_start_token_id
    tok = Qwen3OmniMoeProcessor.from_pretrained(tiny_qwen3_dir).tokenizer
    Qwen3Omni.prepare_config(config, tok)
    assert config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")


def test_audio_token_count_and_spans_follow_the_encoder(family_model, clip_dir):
    model = family_model
    bb = model.backbone
    batch = encode_batch(model, [make_sample("a")], clip_dir)
    with torch.no_grad():
        media = model.embed_media(batch)
    n = int((batch["input_ids"] == model.config.audio_token_id).sum())
    assert media.audios[0].shape[0] == n == bb.audio_token_count(batch["input_features"].shape[-1])
    starts, ends = bb.audio_token_spans(n)
    assert n == pytest.approx(4.0 * bb.audio_tokens_per_second, abs=2)  # a 4-second clip
    assert bool((ends > starts).all()) and bool((starts[1:] >= starts[:-1]).all()) and float(ends[-1]) <= 4.1
    if isinstance(bb, Qwen3Omni):
        assert float(starts[13]) == 1.0 and float(ends[12]) == 1.0, "token 13 opens the second 1-second window"
    assert (media.deepstack is not None) == isinstance(bb, Qwen3Omni)


# -- parity with Hugging Face ---------------------------------------------------------------------------------
def test_without_trigger_output_equals_hf_greedy(family_model, clip_dir):
    model = family_model
    batch = encode_batch(model, [make_sample("a"), make_sample("b", video="clip3.mp4", blocks=((1.0, 2.5),))],
                         clip_dir, for_generation=True)
    assert batch["attention_mask"][1].eq(0).any(), "the batch is left-padded"
    ours = generate(model, batch, GenerationConfig(max_new_tokens=24))
    assert ours.num_blocks == [0, 0]
    hf = _hf_generate(model, batch, 24)
    assert torch.equal(ours.sequences[:, : hf.shape[1]], hf)


def test_teacher_forced_pass_equals_the_thinkers_own_forward(family_model, clip_dir):
    """Without latent slots the wrapper's pass is the thinker's forward (DeepStack, positions, MoE included);
    the router loss is the thinker's own ``aux_loss``."""
    model = family_model
    batch = encode_batch(model, _two_samples(), clip_dir, variant="text_cot")
    assert not (batch["slot_index"] >= 0).any()
    router: dict = {}
    with torch.no_grad():
        ours, _, _ = model.teacher_forced_hidden(batch, router_out=router)
        hf = model.thinker(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           pixel_values_videos=batch["pixel_values_videos"], video_grid_thw=batch["video_grid_thw"],
                           video_second_per_grid=batch["video_second_per_grid"],
                           input_features=batch["input_features"],
                           feature_attention_mask=batch["feature_attention_mask"], use_audio_in_video=True,
                           output_hidden_states=True,
                           **({"output_router_logits": True} if model.backbone.has_router else {}))
    real = batch["attention_mask"].bool()
    assert torch.allclose(ours[real], hf.hidden_states[-1][real], atol=1e-5)
    if model.backbone.has_router:
        assert torch.allclose(router["loss_router"], hf.aux_loss)
    else:
        assert router == {}


@pytest.mark.parametrize("flow", ["causal", "through_latents"])
def test_generation_matches_the_teacher_forced_forward(family_model, clip_dir, flow):
    """The generated sequence, fed with its own latents at the slots through the training pass, reproduces
    every latent and every free token (same positions, masks, DeepStack inputs and cache semantics)."""
    model = family_model
    model.latent.attention_flow = flow
    t = model.token_ids
    prompt = encode_batch(model, [make_sample("b", video="clip3.mp4", blocks=((1.0, 2.5),))], clip_dir,
                          for_generation=True)
    out = generate(model, prompt, GenerationConfig(max_new_tokens=56, output_latents=True),
                   logits_processor=force_trigger_at(model, 2))
    assert out.num_blocks == [1]
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
    pos = torch.arange(n_prompt - 1, n_prompt - 1 + len(gen))
    free = (ids[0, pos] != t.slot) & ~torch.isin(gen, torch.tensor([t.slot, t.end, t.start]))
    assert free.sum() > 10
    assert torch.equal(model.thinker.lm_head(hidden[0, pos[free]]).argmax(-1), gen[free])


def test_rollout_feeds_deepstack_like_decoding(family_model, clip_dir):
    """The rollout's states (prompt chunk with its DeepStack inputs) are the states decoding feeds back."""
    model = family_model
    samples = [make_sample("b", video="clip3.mp4", blocks=((1.0, 2.5),))]
    train = encode_batch(model, samples, clip_dir)
    prompts = encode_batch(model, samples, clip_dir, for_generation=True)
    n_prompt = int(prompts["attention_mask"][0].sum())
    reply = train["input_ids"][0, n_prompt:int(train["attention_mask"][0].sum())].tolist()

    def process(step, logits):
        if step < len(reply):
            logits[0, reply[step]] = 1e4
        return logits
    out = generate(model, prompts, GenerationConfig(max_new_tokens=len(reply) + 1, output_latents=True),
                   logits_processor=process)
    assert out.num_blocks == [1]
    states = model.rollout_slot_states(train)
    assert (states - out.latents[0]).abs().max() < 1e-5


# -- positions, padding, gradients, persistence ------------------------------------------------------------------
def test_non_latent_positions_match_the_familys_get_rope_index(family_model, clip_dir):
    model = family_model
    batch = encode_batch(model, _two_samples(), clip_dir)
    ours = model.rope_positions(batch)
    hf, _ = model.thinker.model.get_rope_index(
        batch["input_ids"], None, batch["video_grid_thw"], batch["attention_mask"], True,
        batch["feature_attention_mask"].sum(-1), batch["video_second_per_grid"])
    keep = (batch["slot_index"] < 0) & batch["attention_mask"].bool()
    assert torch.equal(ours[:, keep], hf[:, keep])
    assert not torch.equal(ours, hf), "OSPE changes the slot positions"
    # OSPE: audio latent j shares its position with visual latent 4j (K=40, 32/8) in every family
    slots = batch["slot_index"][0]
    first = (slots == 0).nonzero().flatten()[0]
    block = ours[0, 0, first:first + 40]
    assert torch.equal(block[32:], block[0:32:4])


def test_batch_with_padding_gives_the_same_per_sample_losses(family_model, clip_dir):
    model = family_model
    samples = _two_samples()
    with torch.no_grad():
        both = model(**encode_batch(model, samples, clip_dir), per_sample=True).per_sample
        for i, s in enumerate(samples):
            one = model(**encode_batch(model, [s], clip_dir), per_sample=True).per_sample
            for k in ("loss_text", "loss_latent"):
                assert torch.allclose(both[k][i], one[k][0], atol=1e-5), k


def test_each_loss_term_reaches_the_llm(family_model, clip_dir):
    model = family_model
    batch = encode_batch(model, _two_samples(), clip_dir)
    layer = model.thinker.model.language_model.layers[0].self_attn.q_proj.weight
    out = model(**batch)
    terms = ["loss_text", "loss_latent", "loss_sync"] + (["loss_router"] if model.backbone.has_router else [])
    if model.backbone.has_router:
        lat = model.latent
        expect = (out.loss_text + lat.lambda_latent * out.loss_latent + lat.lambda_sync * out.loss_sync
                  + lat.lambda_router * out.loss_router)
        assert torch.allclose(out.loss, expect) and out.loss_router > 0
    else:
        assert out.loss_router is None
    for term in terms:
        model.zero_grad()
        getattr(model(**batch), term).backward()
        assert layer.grad is not None and layer.grad.abs().sum() > 0, term
        if term == "loss_sync":
            assert model.log_temperature.grad is not None, "the sync loss trains its temperature"
    if model.backbone.has_router:
        gate = model.thinker.model.language_model.layers[0].mlp.gate.weight
        model.zero_grad()
        model(**batch).loss_router.backward()
        assert gate.grad is not None and gate.grad.abs().sum() > 0, "the router loss trains the router"


def test_save_load_round_trip(family_model, clip_dir, tmp_path):
    model = family_model
    model.log_temperature.data.fill_(-1.5)
    batch = encode_batch(model, _two_samples(), clip_dir)
    with torch.no_grad():
        before = model(**batch)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = LatentOmniModel.from_pretrained(tmp_path / "ckpt").eval()
    assert type(loaded.backbone) is type(model.backbone)
    assert type(loaded.thinker) is type(model.thinker)
    assert loaded.token_ids == model.token_ids and loaded.latent == model.latent
    assert loaded.processor.tokenizer.convert_tokens_to_ids("<Unified_Latent>") == model.token_ids.start
    with torch.no_grad():
        after = loaded(**encode_batch(loaded, _two_samples(), clip_dir))
    assert torch.allclose(before.loss, after.loss)
    assert loaded.log_temperature.item() == -1.5
