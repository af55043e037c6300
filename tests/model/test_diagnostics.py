"""Latent diagnostics (model/diagnostics.py) on the tiny model with rendered clips."""

import math

import pytest
import torch

from latentomni.model.diagnostics import LatentDiagnostics
from lo_testing import encode_batch, make_sample

SEGMENTS_4 = [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0]]
SEGMENTS_3 = [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]


def _samples():
    a = make_sample("a", blocks=((1.0, 2.0), (2.0, 3.0)))
    a["meta"] = {"segments": SEGMENTS_4}
    b = make_sample("b", video="clip3.mp4", blocks=((0.0, 1.0),))
    b["meta"] = {"segments": SEGMENTS_3}
    return [a, b]


def _anchors(model, batch):
    with torch.no_grad():
        _, anchors, _ = model.teacher_forced_hidden(batch)
    return anchors.reshape(-1, anchors.shape[-1])


def test_latents_that_are_the_anchors_retrieve_every_segment_and_are_worth_the_anchors(model, clip_dir):
    batch = encode_batch(model, _samples(), clip_dir)
    diag = LatentDiagnostics()
    diag.add(model, batch, own=_anchors(model, batch))
    r = diag.result()
    assert r["latent/retrieval"] == 1.0 and r["latent/retrieval_trigger"] == 1.0
    assert r["latent/retrieval_chance"] == pytest.approx((1 / 4 + 1 / 4 + 1 / 3) / 3)
    assert r["latent/fidelity_cos"] == pytest.approx(1.0, abs=1e-5)
    assert r["latent/fidelity_rse"] == pytest.approx(0.0, abs=1e-6)
    assert r["latent/value_own"] == pytest.approx(r["latent/value_anchors"], abs=1e-5)
    assert r["latent/value_zeros"] != pytest.approx(r["latent/value_anchors"], abs=1e-4)
    assert r["latent/value_other"] != pytest.approx(r["latent/value_anchors"], abs=1e-6)
    assert r["latent/blocks"] == 3 and r["latent/latents"] == 3 * model.latent.num_latents
    assert r["latent/value_tokens"] > 0
    assert all(isinstance(v, float) and math.isfinite(v) for v in r.values())


def test_latents_that_are_another_segments_anchors_retrieve_nothing(model, clip_dir):
    batch = encode_batch(model, _samples(), clip_dir)
    media: dict = {}
    with torch.no_grad():
        model.teacher_forced_hidden(batch, media_out=media)
        bank = model.segment_anchors(batch, media["videos"], media["audios"])
    wrong = torch.tensor([0, 3, 5])  # another segment of each block's own clip (clip 4: rows 0-3, clip 3: 4-6)
    assert not (wrong == batch["block_segment"]).any()
    diag = LatentDiagnostics()
    diag.add(model, batch, own=bank[wrong].reshape(-1, bank.shape[-1]))
    r = diag.result()
    assert r["latent/retrieval"] == 0.0 and r["latent/retrieval_trigger"] == 0.0
    assert r["latent/fidelity_cos"] < 1.0


def test_default_own_latents_are_the_decoded_states(model, clip_dir):
    batch = encode_batch(model, _samples(), clip_dir)
    decoded, default = LatentDiagnostics(), LatentDiagnostics()
    decoded.add(model, batch, own=model.rollout_slot_states(batch))
    default.add(model, batch)
    r = default.result()
    assert r == pytest.approx(decoded.result(), abs=1e-5)
    assert -1.0 <= r["latent/fidelity_cos"] <= 1.0 and 0.0 <= r["latent/retrieval"] <= 1.0
    # teacher-forced states are measured beside the decoded ones (their gap is the exposure gap)
    assert {"latent/fidelity_cos_teacher", "latent/retrieval_teacher"} <= r.keys()


def test_the_result_does_not_depend_on_the_batching(model, clip_dir):
    samples = _samples()
    whole, parts = LatentDiagnostics(), LatentDiagnostics()
    whole.add(model, encode_batch(model, samples, clip_dir))
    for s in samples:
        parts.add(model, encode_batch(model, [s], clip_dir))
    assert parts.result() == pytest.approx(whole.result(), rel=1e-4, abs=1e-5)


def test_trigger_rate_and_blocks_per_reply_come_from_generation():
    diag = LatentDiagnostics()
    diag.add_generation([0, 2, 1, 0])
    assert diag.result() == {"latent/blocks_per_reply": 0.75, "latent/trigger_rate": 0.5}


def test_a_batch_without_latent_blocks_adds_nothing(model, clip_dir):
    diag = LatentDiagnostics()
    diag.add(model, encode_batch(model, [make_sample("v", blocks=())], clip_dir))
    assert diag.result() == {}
