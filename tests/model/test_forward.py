"""The single-pass training forward on the tiny Qwen2.5-Omni model. Padding, gradients of every loss term,
positions and persistence are tested over both backbone families in test_backbones.py."""

import torch

from latentomni.data.collate import IGNORE_INDEX
from lo_testing import encode_batch, make_sample


def _two_samples():
    return [make_sample("a", blocks=((0.0, 2.0), (2.0, 4.0))),
            make_sample("b", video="clip3.mp4", blocks=((1.0, 2.5),))]


def test_ce_targets_are_discrete_assistant_tokens_only(model, clip_dir):
    batch = encode_batch(model, [_two_samples()[0]], clip_dir)
    ids, labels, slots = batch["input_ids"][0], batch["labels"][0], batch["slot_index"][0]
    t = model.token_ids
    targets = labels != IGNORE_INDEX
    assert targets[ids == t.start].all(), "the trigger is a CE target"
    assert not targets[ids == t.end].any(), "the inserted stop token is not"
    assert not targets[slots >= 0].any(), "latent slots are not"
    assert not targets[model.media_key_mask(ids)].any(), "media/prompt tokens are not"
    first_target = int(targets.nonzero()[0])
    assert model.processor.tokenizer.decode(ids[:first_target]).endswith("<|im_start|>assistant\n")
    text = model.processor.tokenizer.decode(ids[targets])
    assert "\\boxed{B}" in text and text.endswith("<|im_end|>")
    assert (slots >= 0).sum() == 2 * model.latent.num_latents
    assert torch.equal(labels[targets], ids[targets])


def test_latent_loss_aligns_the_state_before_each_slot_with_its_anchor(model, clip_dir):
    batch = encode_batch(model, [_two_samples()[1]], clip_dir)
    with torch.no_grad():
        hidden, anchors, _ = model.teacher_forced_hidden(batch)
        out = model(**batch)
    slot_pos = (batch["slot_index"][0] >= 0).nonzero().flatten()
    trigger_pos = int((batch["input_ids"][0] == model.token_ids.start).nonzero()[0])
    assert int(slot_pos[0]) == trigger_pos + 1, "the trigger's state predicts the first anchor"
    z = hidden[0, slot_pos - 1]
    expect = (z - anchors[0]).pow(2).sum(-1).mean()
    assert torch.allclose(out.loss_latent, expect)
    # the anchors are the inputs at the slots: the first visual anchor pools the window's video tokens
    assert anchors.shape == (1, 40, model.config.text_config.hidden_size)


def test_total_is_eq7(model, clip_dir):
    out = model(**encode_batch(model, _two_samples(), clip_dir))
    lat = model.latent
    expect = out.loss_text + lat.lambda_latent * out.loss_latent + lat.lambda_sync * out.loss_sync
    assert torch.allclose(out.loss, expect)
    assert out.loss_sync > 0 and out.loss_latent > 0


def test_sync_detach_stops_the_gradient_at_the_latents(model, clip_dir):
    model.latent.sync_detach = True
    batch = encode_batch(model, _two_samples(), clip_dir)
    model(**batch).loss_sync.backward()
    layer = model.thinker.model.language_model.layers[0].self_attn.q_proj.weight
    assert layer.grad is None or layer.grad.abs().sum() == 0
    assert model.log_temperature.grad is not None


def test_new_token_embeddings_start_at_the_mean(model):
    emb = model.thinker.get_input_embeddings().weight
    old = model.token_ids.start
    assert torch.allclose(emb[old], emb[: old].mean(0), atol=1e-6)
