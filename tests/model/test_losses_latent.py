"""The ``latent_loss`` and ``sync_negatives`` switches of LatentConfig (issue 17): values, gradients, and
what each is (or is not) invariant to."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from latentomni.config import LatentConfig
from latentomni.data.collate import SampleEncoder, collate
from latentomni.data.features import MediaSettings
from latentomni.data.schema import parse_sample
from latentomni.model.losses import SegmentBank, latent_loss, latent_loss_items, sync_loss
from latentomni.model.wrapper import LatentOmniModel
from lo_testing import encode_batch, make_sample

KINDS = ("mse_sum", "mse_mean", "cosine", "cosine_norm", "contrastive")
SEGMENTS_4 = [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0]]
SEGMENTS_3 = [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]


def _with_segments(sample: dict, segments: list) -> dict:
    sample["meta"] = {"segments": segments}
    return sample


def _samples():
    """Clip 4 (two blocks citing its 2nd and 3rd segments) and clip 3 (one block), both with all segments."""
    return [_with_segments(make_sample("a", blocks=((1.0, 2.0), (2.0, 3.0))), SEGMENTS_4),
            _with_segments(make_sample("b", video="clip3.mp4", blocks=((0.0, 1.0),)), SEGMENTS_3)]


def _bank(s=4, k=3, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SegmentBank(torch.randn(s, k, d, generator=g), torch.tensor([0, 0, 1, 1])[:s])


# -- pure loss functions ---------------------------------------------------------------------------------
def test_mse_sum_is_eq5_and_mse_mean_divides_by_the_hidden_size():
    z, a = torch.randn(6, 16), torch.randn(6, 16)
    assert torch.allclose(latent_loss_items(z, a, "mse_sum").mean(), latent_loss(z, a))
    assert torch.allclose(latent_loss_items(z, a, "mse_mean"), latent_loss_items(z, a, "mse_sum") / 16)


def test_cosine_ignores_the_norm_and_cosine_norm_matches_it():
    a = torch.randn(5, 16)
    assert torch.allclose(latent_loss_items(3 * a, a, "cosine"), torch.zeros(5), atol=1e-6)
    assert torch.allclose(latent_loss_items(3 * a, a, "cosine_norm"), torch.full((5,), 4.0), atol=1e-5)
    assert torch.allclose(latent_loss_items(a, a, "cosine_norm"), torch.zeros(5), atol=1e-6)
    assert torch.allclose(latent_loss_items(-a, a, "cosine"), torch.full((5,), 2.0), atol=1e-6)


def _contrastive(z, bank, slot, segment, **kw):
    return latent_loss_items(z, bank.anchors[segment, slot], "contrastive", slot=slot, segment=segment,
                             bank=bank, **kw)


@pytest.mark.parametrize("center", ["off", "batch", "clip"])
def test_contrastive_is_lower_for_the_own_segments_anchors_than_for_another_segments(center):
    bank = _bank()
    k = bank.anchors.shape[1]
    slot, segment = torch.arange(k), torch.full((k,), 1)
    own = _contrastive(bank.anchors[1], bank, slot, segment, center=center).mean()
    other = _contrastive(bank.anchors[0], bank, slot, segment, center=center).mean()
    assert own < other
    assert own < math.log(bank.anchors.shape[0]) < other, "own anchors beat chance, another segment's lose to it"


def test_contrastive_is_not_lowered_by_a_direction_all_segments_share():
    """The issue's failure: latents on the anchors' common direction. MSE/cosine reward it, contrastive
    sits at chance (ln S) for it, and only the segment-specific part lowers it."""
    g = torch.Generator().manual_seed(1)
    common = 10 * torch.randn(1, 1, 32, generator=g)
    bank = SegmentBank(common + torch.randn(4, 2, 32, generator=g), torch.zeros(4, dtype=torch.long))
    slot, segment = torch.arange(2), torch.full((2,), 2)
    z_common = common[0].expand(2, -1)
    value = _contrastive(z_common, bank, slot, segment).mean()
    assert latent_loss_items(z_common, bank.anchors[2], "cosine").mean() < 0.05
    assert value == pytest.approx(math.log(4), abs=0.05)
    own = _contrastive(bank.anchors[2], bank, slot, segment).mean()
    assert own < value, "the segment-specific part lowers it"
    # ... but barely while the shared direction dominates every cosine; centring the anchors removes it
    centred = _contrastive(bank.anchors[2], bank, slot, segment, center="clip").mean()
    assert centred < own - 0.5


def test_contrastive_uses_the_same_slots_anchors_only():
    bank = _bank(k=2)
    slot, segment = torch.tensor([0]), torch.tensor([1])
    moved = SegmentBank(bank.anchors.clone(), bank.clip)
    moved.anchors[:, 1] = torch.randn_like(moved.anchors[:, 1])  # other slot: no effect on a slot-0 latent
    z = torch.randn(1, 8)
    assert torch.allclose(_contrastive(z, bank, slot, segment), _contrastive(z, moved, slot, segment))


def test_contrastive_without_other_segments_is_zero():
    bank = _bank(s=1)
    z = torch.randn(3, 8, requires_grad=True)
    value = _contrastive(z, bank, torch.arange(3), torch.zeros(3, dtype=torch.long))
    assert torch.allclose(value, torch.zeros(3))


def test_contrastive_needs_the_segment_bank():
    with pytest.raises(ValueError, match=r"contrastive.*segment anchors"):
        latent_loss_items(torch.randn(2, 4), torch.randn(2, 4), "contrastive")


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_reaches_the_latents_and_never_the_anchors(kind):
    bank = _bank()
    anchors = bank.anchors.clone().requires_grad_(True)
    bank = SegmentBank(anchors, bank.clip)
    slot, segment = torch.arange(3), torch.tensor([2, 2, 2])
    z = torch.randn(3, 8, requires_grad=True)
    target = anchors[segment, slot].detach()
    value = latent_loss_items(z, target, kind, slot=slot, segment=segment, bank=bank).mean()
    value.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0, kind
    assert anchors.grad is None or anchors.grad.abs().sum() == 0, kind


def test_unknown_kind_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown latent_loss 'l1'.*mse_sum"):
        latent_loss_items(torch.randn(2, 4), torch.randn(2, 4), "l1")


# -- sync negatives --------------------------------------------------------------------------------------
def test_sync_batch_negatives_match_a_hand_computed_infonce_over_every_slice():
    v, a = torch.randn(3, 2, 8), torch.randn(3, 2, 8)
    log_tau = torch.tensor(0.07).log()
    vn, an = F.normalize(v.reshape(6, 8), dim=-1), F.normalize(a.reshape(6, 8), dim=-1)
    logits = vn @ an.T / 0.07
    expect = 0.5 * (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.T, torch.arange(6)))
    assert torch.allclose(sync_loss(v, a, log_tau, negatives="batch"), expect, atol=1e-5)
    assert not torch.allclose(sync_loss(v, a, log_tau, negatives="window"), expect)


def test_sync_batch_negatives_of_one_block_are_the_window_negatives():
    v, a = torch.randn(1, 4, 8), torch.randn(1, 4, 8)
    log_tau = torch.tensor(-1.0)
    assert torch.allclose(sync_loss(v, a, log_tau, negatives="batch"), sync_loss(v, a, log_tau))


def test_sync_batch_negatives_tell_apart_blocks_whose_slices_are_identical():
    """The window variant's failure: with near-identical slices within a window it sits at chance ln T
    whether or not a block's audio belongs with its video; with the batch's other blocks as negatives
    the matched pairing scores lower than a shuffled one."""
    g = torch.Generator().manual_seed(0)
    visual = torch.randn(4, 1, 8, generator=g).expand(4, 3, 8)  # every slice of a block the same
    shuffled = visual[torch.tensor([1, 2, 3, 0])]
    log_tau = torch.tensor(0.05).log()
    for audio in (visual, shuffled):
        assert sync_loss(visual, audio, log_tau) == pytest.approx(math.log(3), abs=1e-4)
    assert sync_loss(visual, visual, log_tau, negatives="batch") < \
        sync_loss(visual, shuffled, log_tau, negatives="batch") - 1.0


def test_sync_batch_gradient_reaches_the_latents_and_tau():
    v, a = torch.randn(2, 3, 8, requires_grad=True), torch.randn(2, 3, 8, requires_grad=True)
    log_tau = torch.tensor(0.07).log().requires_grad_(True)
    sync_loss(v, a, log_tau, negatives="batch").backward()
    assert v.grad.abs().sum() > 0 and a.grad.abs().sum() > 0 and log_tau.grad is not None


# -- config -----------------------------------------------------------------------------------------------
def test_config_refuses_unknown_switches_and_centring_without_contrastive():
    assert LatentConfig().latent_loss == "mse_sum" and LatentConfig().sync_negatives == "window"
    with pytest.raises(ValueError, match="latent_loss"):
        LatentConfig(latent_loss="l1")
    with pytest.raises(ValueError, match="sync_negatives"):
        LatentConfig(sync_negatives="clip")
    with pytest.raises(ValueError, match="center_anchors='batch' applies to latent_loss 'contrastive' only"):
        LatentConfig(center_anchors="batch")
    LatentConfig(latent_loss="contrastive", center_anchors="clip")


# -- the segment table of a batch -------------------------------------------------------------------------
def test_collate_lists_every_segment_of_the_batchs_clips_once(model, clip_dir):
    twin = _with_segments(make_sample("a2", blocks=((3.0, 4.0),)), SEGMENTS_4)  # same clip as "a"
    batch = encode_batch(model, [*_samples(), twin], clip_dir)
    windows = batch["segment_windows"].tolist()
    assert len(windows) == 4 + 3, "clip 4's segments are shared by a and a2"
    assert batch["segment_clip"].tolist() == [0, 0, 0, 0, 1, 1, 1]
    cited = [windows[i] for i in batch["block_segment"].tolist()]
    assert cited == batch["block_windows"].tolist() == [[1.0, 2.0], [2.0, 3.0], [0.0, 1.0], [3.0, 4.0]]
    assert batch["block_segment"].tolist() == [1, 2, 4, 3]


def test_a_sample_without_segments_knows_its_cited_windows_only(model, clip_dir):
    batch = encode_batch(model, [make_sample("a", blocks=((1.0, 2.0), (2.0, 3.0)))], clip_dir)
    assert batch["segment_windows"].tolist() == [[1.0, 2.0], [2.0, 3.0]]
    assert batch["block_segment"].tolist() == [0, 1]


def test_a_malformed_segment_list_names_the_sample_and_the_entry(model, clip_dir):
    enc = SampleEncoder.for_model(model, MediaSettings(max_pixels=56 * 56))
    bad = parse_sample(_with_segments(make_sample("bad-7"), [[0.0, 1.0], [2.0, 1.5]]))
    with pytest.raises(ValueError, match=r"sample bad-7: meta.segments\[1\] must be \[start, end\]"):
        enc.encode(bad, clip_dir)


def test_segments_beyond_the_media_are_dropped(model, clip_dir):
    enc = SampleEncoder.for_model(model, MediaSettings(max_pixels=56 * 56))
    sample = parse_sample(_with_segments(make_sample("b", video="clip3.mp4", blocks=((0.0, 1.0),)),
                                         [*SEGMENTS_3, [3.0, 4.0]]))
    e = enc.encode(sample, clip_dir)
    assert e.segments == [tuple(s) for s in SEGMENTS_3]
    assert collate([e], 0)["segment_windows"].shape == (3, 2)


# -- in the model's forward ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_each_latent_loss_reaches_the_llm_and_per_sample_means_give_the_term(model, clip_dir, kind):
    model.latent.latent_loss = kind
    batch = encode_batch(model, _samples(), clip_dir)
    layer = model.thinker.model.language_model.layers[0].self_attn.q_proj.weight
    out = model(**batch, per_sample=True)
    out.loss_latent.backward()
    assert torch.isfinite(out.loss_latent) and out.loss_latent > 0
    assert layer.grad is not None and layer.grad.abs().sum() > 0, kind
    slots = (batch["slot_index"] >= 0).sum(1).float()
    weighted = (out.per_sample["loss_latent"] * slots).sum() / slots.sum()
    assert torch.allclose(weighted, out.loss_latent.detach(), rtol=1e-5)


def test_contrastive_in_the_model_uses_every_segment_of_the_clip(model, clip_dir):
    """z = the clip's own segment anchors gives a lower contrastive loss than z = another segment's."""
    model.latent.latent_loss = "contrastive"
    batch = encode_batch(model, _samples(), clip_dir)
    media: dict = {}
    with torch.no_grad():
        _, anchors, _ = model.teacher_forced_hidden(batch, media_out=media)
        bank = model.segment_anchors(batch, media["videos"], media["audios"])
        assert bank.shape[0] == 7
        assert torch.allclose(bank[batch["block_segment"]], anchors), "the cited row is the block's anchors"
        k = model.latent.num_latents
        own = model.latent_items(batch, anchors.reshape(-1, anchors.shape[-1]), anchors, media).mean()
        shifted = bank[(batch["block_segment"] + 1) % bank.shape[0]]  # every block: another segment
        other = model.latent_items(batch, shifted.reshape(-1, shifted.shape[-1]), anchors, media).mean()
    assert own < math.log(7) < other
    assert anchors.shape[1] == k


@pytest.mark.parametrize("kind", ["mse_sum", "mse_mean", "cosine", "cosine_norm"])
def test_per_latent_losses_are_invariant_to_how_the_batch_is_split(model, clip_dir, kind):
    """With the global item counts, the terms of two micro-batches add up to the whole batch's. (The
    contrastive loss and sync_negatives=batch depend on the batch's other clips, so they are not.)"""
    model.latent.latent_loss = kind
    samples = _samples()
    with torch.no_grad():
        whole = model(**encode_batch(model, samples, clip_dir))
        parts = [encode_batch(model, [s], clip_dir) for s in samples]
        norm = sum(LatentOmniModel.loss_items(p) for p in parts)
        split = [model(**p, loss_normalizers=norm) for p in parts]
    for term in ("loss_text", "loss_latent", "loss_sync"):
        assert torch.allclose(sum(getattr(o, term) for o in split), getattr(whole, term), rtol=1e-4), term


def test_sync_negatives_batch_in_the_model_changes_the_term_and_keeps_its_gradient(model, clip_dir):
    batch = encode_batch(model, _samples(), clip_dir)
    with torch.no_grad():
        window = model(**batch).loss_sync
    model.latent.sync_negatives = "batch"
    out = model(**batch)
    assert not torch.allclose(out.loss_sync, window)
    out.loss_sync.backward()
    layer = model.thinker.model.language_model.layers[0].self_attn.q_proj.weight
    assert layer.grad is not None and layer.grad.abs().sum() > 0
    assert model.log_temperature.grad is not None


def test_world_samples_carry_every_segment_of_their_clip_and_cite_among_them():
    from latentomni.data.world.generate import WorldConfig, make_clips, questions_for, reasoning_sample

    cfg = WorldConfig(n_train_clips=4, n_test_clips=0)
    rng = np.random.default_rng(0)
    for clip in make_clips(cfg, "train", 4):
        for k, q in enumerate(questions_for(rng, clip, cfg.seen_types, 2, None, cfg.option_order)):
            s = parse_sample(reasoning_sample(rng, q, clip, f"w-{k}").model_dump())
            assert s.meta["segments"] == [[seg.start, seg.end] for seg in clip.segments]
            assert all([b.start, b.end] in s.meta["segments"] for b in s.latent_blocks)
