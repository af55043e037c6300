"""Equation-level checks on numbers worked out by hand."""

import math

import torch

from latentomni.config import LatentConfig
from latentomni.model.anchors import audio_token_window, pool_anchors, pooling_weights, video_token_window
from latentomni.model.losses import latent_loss, sync_loss, sync_pairs
from latentomni.model.masks import blocked_queries, training_mask
from latentomni.model.ospe import apply_ospe, latent_position_offsets


def test_pooling_weights_are_l2_norms_within_contiguous_chunks():
    x = torch.tensor([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0], [1.0, 0.0]])  # norms 5, 1, 10, 1
    w = pooling_weights(x, 2)
    assert torch.allclose(w, torch.tensor([[5 / 6, 1 / 6, 0, 0], [0, 0, 10 / 11, 1 / 11]]))
    a = pool_anchors(x, 2)
    assert torch.allclose(a[0], torch.tensor([15 / 6, 21 / 6]))
    assert torch.allclose(a[1], torch.tensor([61 / 11, 80 / 11]))


def test_pooling_with_fewer_tokens_than_anchors_repeats_tokens():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    a = pool_anchors(x, 8)
    assert a.shape == (8, 2)
    # chunk k holds token floor(k*3/8): 0,0,0,1,1,1,2,2
    expect = x[torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])]
    assert torch.allclose(a, expect)


def test_anchors_are_detached():
    x = torch.randn(10, 4, requires_grad=True)
    assert not pool_anchors(x, 3).requires_grad


def test_video_and_audio_windows_follow_token_timestamps():
    # 4 temporal patches of 1 s each, 2x2 tokens per patch after merging (grid h=w=4, merge 2)
    idx = video_token_window(torch.tensor([4, 4, 4]), 1.0, 2, 1.0, 3.0)
    assert idx.tolist() == [4, 5, 6, 7, 8, 9, 10, 11]
    assert video_token_window(torch.tensor([4, 4, 4]), 1.0, 2, 1.5, 1.6).tolist() == [4, 5, 6, 7]
    # audio: 25 tokens per second
    assert audio_token_window(100, 1.0, 2.0).tolist() == list(range(25, 50))


def test_latent_loss_is_sum_over_dims_mean_over_latents():
    z = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    a = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert latent_loss(z, a).item() == (5 + 25) / 2


def test_infonce_matches_hand_computation():
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    a = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    tau = 0.5
    loss = sync_loss(v, a, torch.tensor(math.log(tau)))
    s = 1 / math.sqrt(2)
    sim = [[1.0, s], [0.0, s]]  # cos(v_i, a_j)

    def nll(row, i):
        return -(row[i] / tau - math.log(sum(math.exp(r / tau) for r in row)))

    v2a = (nll(sim[0], 0) + nll(sim[1], 1)) / 2
    cols = [[sim[0][0], sim[1][0]], [sim[0][1], sim[1][1]]]
    a2v = (nll(cols[0], 0) + nll(cols[1], 1)) / 2
    assert abs(loss.item() - 0.5 * (v2a + a2v)) < 1e-5


def test_infonce_temperature_is_learnable():
    log_t = torch.tensor(math.log(0.07), requires_grad=True)
    sync_loss(torch.randn(2, 4, 8), torch.randn(2, 4, 8), log_t).backward()
    assert log_t.grad is not None and log_t.grad != 0


def test_sync_pairs_group_visual_latents_by_audio_slice():
    v = torch.arange(8, dtype=torch.float).view(1, 8, 1)  # Kv=8
    a = torch.arange(2, dtype=torch.float).view(1, 2, 1)  # Ka=2
    gv, ga = sync_pairs(v, a, 2)
    assert gv.flatten().tolist() == [1.5, 5.5] and ga.flatten().tolist() == [0.0, 1.0]


def test_ospe_offsets_share_timestamps_between_modalities():
    cfg = LatentConfig()
    off = latent_position_offsets(cfg)
    vis, aud = off[:32], off[32:]
    for j in range(8):
        assert aud[j] == vis[4 * j], "audio latent j and visual latent 4j start at the same moment"
    assert off.max() < cfg.num_latents and torch.all(vis[1:] > vis[:-1])
    assert latent_position_offsets(LatentConfig(ospe=False)).tolist() == list(range(40))


def test_apply_ospe_only_touches_slots():
    cfg = LatentConfig(num_latents=4, num_visual=2, num_audio=2)
    pos = torch.arange(10).view(1, 1, 10).expand(3, 1, 10)
    slots = torch.tensor([[-1, -1, 0, 1, 2, 3, -1, -1, -1, -1]])
    out = apply_ospe(pos, slots, cfg)
    # offsets: visual 0,2 ; audio 0,2 -> slots at p0=2: 2,4,2,4
    assert out[0, 0].tolist() == [0, 1, 2, 4, 2, 4, 6, 7, 8, 9]
    assert torch.equal(out[1], out[0]) and torch.equal(out[2], out[0])


def test_through_latents_mask_blocks_media_only_after_trigger_for_text():
    # seq: m m q T s s E t   (m media, q question, T trigger, s slot, E end, t text)
    is_trig = torch.tensor([[0, 0, 0, 1, 0, 0, 0, 0]]).bool()
    is_slot = torch.tensor([[0, 0, 0, 0, 1, 1, 0, 0]]).bool()
    media = torch.tensor([[1, 1, 0, 0, 0, 0, 0, 0]]).bool()
    attn = torch.ones(1, 8, dtype=torch.long)
    blocked = blocked_queries(is_trig, is_slot, attn)
    assert blocked[0].tolist() == [False] * 6 + [True, True]
    mask = training_mask(attn, media, blocked, torch.float32)[0, 0]
    allowed = mask == 0
    assert allowed[5, 0] and allowed[3, 1], "slots and the trigger see the media"
    assert not allowed[6, 0] and not allowed[7, 1], "text after the block does not"
    assert allowed[7, 5] and allowed[7, 2], "it sees the latents and the question"
    assert not allowed[2, 3], "causal"
