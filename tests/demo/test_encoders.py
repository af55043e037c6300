"""Stage 0 of the tiny base: per-time-step labels, and that the committed base's encoders tell the world's
attributes apart (the failure this stage exists for was a vision merger whose output no longer depended on
the frames)."""

import json

import numpy as np
import pytest
import torch

from latentomni.data.world import generate_world
from latentomni.data.world.draw import draw_frames
from latentomni.data.world.scene import COLOURS, SOUNDS, Clip, Segment, Visual
from latentomni.demo.base import ASSET_DIR, DEMO_MEDIA
from latentomni.demo.encoders import IGNORE, VISUAL_CLASSES, clip_tensors
from latentomni.model.wrapper import LatentOmniModel
from lo_testing import AUDIO_TOKENS_PER_SECOND


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("world"), n_train_clips=3, n_test_clips=1, seed=5, workers=1)


def test_labels_follow_the_ground_truth_timeline(world):
    model = LatentOmniModel.from_pretrained(ASSET_DIR)
    records = [json.loads(line) for line in world.path("ground_truth").read_text().splitlines()]
    for rec in records:
        t = clip_tensors(model.processor, rec, world.out_dir, DEMO_MEDIA, model.backbone)
        steps = int(t.grid[0, 0])
        assert t.visual_labels.shape == (steps, len(VISUAL_CLASSES))
        for k in range(steps):  # a time step covers [k, k + 1) s at 2 fps; labelled only inside one segment
            inside = [s for s in rec["segments"] if s["start"] <= k + 0.25 and k + 0.75 < s["end"]]
            row = t.visual_labels[k]
            if inside:
                assert row[0] == list(COLOURS).index(inside[0]["colour"])
            else:
                assert (row == IGNORE).all()
        per_second = AUDIO_TOKENS_PER_SECOND["qwen2.5-omni"]  # the demo's tiny base
        assert len(t.audio_labels) == pytest.approx(rec["duration"] * per_second, abs=1)
        for j in (0, len(t.audio_labels) - 1):
            at = (j + 0.5) / per_second
            seg = next(s for s in rec["segments"] if s["start"] <= at < s["end"])
            assert t.audio_labels[j] == SOUNDS.index(seg["sound"])


def _video_embedding(model, frames: np.ndarray) -> torch.Tensor:
    vp = model.processor.video_processor(videos=[frames], return_tensors="pt", do_sample_frames=False)
    with torch.no_grad():
        out = model.thinker.model.get_video_features(vp["pixel_values_videos"], vp["video_grid_thw"], return_dict=True)
    return out.pooler_output[0].mean(0)


def test_committed_base_sees_colour():
    """Same shape, same motion, other colour: the video embeddings must move far more than between two
    shapes of one colour moving differently would let a constant (collapsed) encoder pretend."""
    model = LatentOmniModel.from_pretrained(ASSET_DIR).eval()

    def clip(colour: str, motion: str) -> np.ndarray:
        seg = Segment(1, 0.0, 2.0, Visual("square", colour, 1, motion), "silence")
        frames = draw_frames(Clip("probe", (seg,)), frame_size=56, fps=4.0)
        return frames[1::2]  # 2 fps, as the model samples

    red_a, red_b = _video_embedding(model, clip("red", "left")), _video_embedding(model, clip("red", "right"))
    blue = _video_embedding(model, clip("blue", "left"))
    same = torch.dist(red_a, red_b)
    other = torch.dist(red_a, blue)
    assert other > 2 * same, (float(other), float(same))
    assert other > 0.1 * red_a.norm(), "colour must move the embedding, not just its last digits"
