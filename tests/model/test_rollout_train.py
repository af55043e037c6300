"""Training with slot_inputs rollout / scheduled: one gradient pass with the model's own states at the slots."""

import pytest
import torch
from pydantic import ValidationError

from latentomni.config import LatentConfig
from latentomni.model import wrapper as wrapper_module
from latentomni.model.losses import text_loss
from lo_testing import encode_batch, make_sample


def _batch(model, clip_dir):
    samples = [make_sample("a", blocks=((0.0, 1.5), (1.5, 3.0))),
               make_sample("b", video="clip3.mp4", blocks=((1.0, 2.5),))]
    return encode_batch(model, samples, clip_dir)


def _llm_params(model):
    return [p for p in model.thinker.model.language_model.parameters() if p.requires_grad]


def _manual_losses(model, batch, slot_inputs):
    """L_text and Eq. 5 of one pass with ``slot_inputs`` (constants) at the slots, the anchors as targets."""
    hidden, _, _ = model.teacher_forced_hidden(batch, slot_inputs=slot_inputs)
    with torch.no_grad():
        _, anchors, _ = model.teacher_forced_hidden(batch)
    target = batch["labels"][:, 1:]
    sel = target != -100
    text = text_loss(model.thinker.lm_head(hidden[:, :-1][sel]), target[sel])
    z = hidden[:, :-1][(batch["slot_index"] >= 0)[:, 1:]]
    latent = (z.float() - anchors.reshape(-1, anchors.shape[-1]).float()).pow(2).sum(-1).mean()
    return text, latent


@pytest.mark.parametrize("flow", ["causal", "through_latents"])
def test_rollout_step_trains_the_llm_through_text_and_latent_losses_not_through_the_states(model, clip_dir, flow):
    model.latent.attention_flow = flow
    batch = _batch(model, clip_dir)
    params = _llm_params(model)
    model.latent.slot_inputs = "rollout"
    out = model(**batch)
    assert torch.isfinite(out.loss) and out.loss_sync.requires_grad
    g_text = torch.autograd.grad(out.loss_text, params, retain_graph=True, allow_unused=True)
    g_latent = torch.autograd.grad(out.loss_latent, params, retain_graph=True, allow_unused=True)
    for name, grads in (("loss_text", g_text), ("loss_latent", g_latent)):
        assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0, f"{name} does not reach the LLM"

    # The gradient pass holds the rolled-out states as constants: the same losses and the same gradients as
    # one pass with those states given as fixed slot inputs (no gradient path through the rollout).
    states = model.rollout_slot_states(batch)
    assert not states.requires_grad
    text, latent = _manual_losses(model, batch, states)
    assert torch.allclose(text, out.loss_text, atol=1e-5) and torch.allclose(latent, out.loss_latent, rtol=1e-5)
    m_text = torch.autograd.grad(text, params, retain_graph=True, allow_unused=True)
    m_latent = torch.autograd.grad(latent, params, allow_unused=True)
    for got, want in ((g_text, m_text), (g_latent, m_latent)):
        for g, w in zip(got, want, strict=True):
            assert (g is None) == (w is None)
            if g is not None:
                assert torch.allclose(g, w, atol=1e-6, rtol=1e-4)

    # ... and it is not the anchor pass.
    model.latent.slot_inputs = "anchors"
    anchored = model(**batch)
    assert not torch.allclose(anchored.loss_text, out.loss_text)


def test_scheduled_uses_anchors_at_p0_and_rollout_at_p1(model, clip_dir, monkeypatch):
    batch = _batch(model, clip_dir)
    with torch.no_grad():
        model.latent.slot_inputs = "anchors"
        anchors = model(**batch)
        model.latent.slot_inputs = "rollout"
        rolled = model(**batch)
        model.latent.slot_inputs = "scheduled"
        model.slot_own_probability = 1.0
        own = model(**batch)
        model.slot_own_probability = 0.0

        def no_rollout(*args, **kwargs):
            raise AssertionError("p = 0 must not roll out")
        monkeypatch.setattr(wrapper_module, "rollout", no_rollout)
        none = model(**batch)
    for key in ("loss", "loss_text", "loss_latent", "loss_sync"):
        assert torch.equal(getattr(none, key), getattr(anchors, key)), key
        assert torch.equal(getattr(own, key), getattr(rolled, key)), key
    assert not torch.allclose(anchors.loss_text, rolled.loss_text)


def test_scheduled_mixes_own_states_and_anchors_per_block(model, clip_dir):
    batch = _batch(model, clip_dir)
    k = model.latent.num_latents
    with torch.no_grad():
        own = model.rollout_slot_states(batch)
        _, anchors, _ = model.teacher_forced_hidden(batch)
        mixed = torch.cat([own[:k], anchors[1], own[2 * k:]])
        want, _, _ = model.teacher_forced_hidden(batch, slot_inputs=mixed)
        got, got_anchors, _ = model.teacher_forced_hidden(batch, own_blocks=torch.tensor([True, False, True]))
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(got_anchors, anchors), "the anchors stay the targets"


def test_scheduled_draws_each_block_with_the_probability(model):
    model.latent.slot_inputs = "scheduled"
    torch.manual_seed(0)
    blocks = {"block_owner": torch.zeros(4000, dtype=torch.long)}
    for p in (0.0, 0.25, 1.0):
        model.slot_own_probability = p
        assert abs(model.own_slot_blocks(blocks).float().mean().item() - p) < 0.03
    model.latent.slot_inputs = "anchors"
    assert model.own_slot_blocks(blocks) is None
    model.latent.slot_inputs = "rollout"
    assert bool(model.own_slot_blocks(blocks).all())


@pytest.mark.parametrize("kwargs, needle", [
    ({"slot_inputs": "teacher"}, "anchors"),
    ({"slot_inputs": "scheduled", "slot_schedule_ramp": 0.0}, "greater than 0"),
    ({"slot_inputs": "scheduled", "slot_schedule_ramp": 1.5}, "less than or equal to 1"),
    ({"slot_inputs": "rollout", "slot_schedule_ramp": 0.5}, "applies to slot_inputs 'scheduled' only"),
    ({"latent_mode": False, "num_latents": 0, "num_visual": 0, "num_audio": 0, "slot_inputs": "rollout"},
     "needs latent_mode: true"),
])
def test_latent_config_rejects_bad_slot_inputs(kwargs, needle):
    with pytest.raises(ValidationError, match=needle):
        LatentConfig(**kwargs)
    assert LatentConfig(slot_inputs="scheduled", slot_schedule_ramp=0.5).slot_schedule_ramp == 0.5


def test_paper_preset_is_the_paper_literal_recipe():
    from pathlib import Path

    from latentomni.train.config import load_config

    path = Path(__file__).resolve().parents[2] / "configs" / "qwen2.5-omni-7b" / "latent_paper.yaml"
    lat = load_config(path).latent
    assert (lat.slot_inputs, lat.latent_loss, lat.sync_negatives, lat.attention_flow) == \
        ("anchors", "mse_sum", "window", "causal")
    assert (lat.num_latents, lat.num_visual, lat.num_audio, lat.lambda_latent, lat.lambda_sync, lat.ospe) == \
        (40, 32, 8, 0.005, 1.0, True)
