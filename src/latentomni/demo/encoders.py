"""Stage 0 of the tiny base: supervised pretraining of its vision and audio encoders.

Qwen2.5-Omni's encoders arrive pretrained (a ViT, a Whisper encoder) before the LLM learns to read them; a
random tiny thinker has no such encoders, and training them only through the language-model loss fails
here. Measured on the synthetic world (frozen random vision tower vs trainable, lr 1e-3, 300 steps of
"What colour is the shape at the start?"): frozen reached 0.68 held-out accuracy (0.22 with the video
zeroed), trainable stayed at chance; in the 4,000-step base trained that way the merger's output had
collapsed to a near-constant (per-dimension std across clips 0.007 against a mean magnitude of 2.1). On a
mix of eight start/end questions the LLM then learned the audio (0.68 on "what sound is heard first") and
never the frozen random vision features (chance after 1,500 steps).

So this stage gives each encoder a direct target, as their real counterparts had: linear heads on the
encoders' LLM-space outputs (after the vision merger, after the audio projection) predict what the ground
truth says is on screen (colour, shape, count, motion, from the mean of a time step's video tokens) and
heard (the sound, from every audio token) at that token's time. The heads are thrown away afterwards; the
encoders keep features in which the world's attributes are linearly readable, and the next stage freezes
the vision tower so the LLM loss cannot collapse it again.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.collate import pad_features
from ..data.features import MediaSettings, whisper_features
from ..data.media import decode_audio, decode_video
from ..data.world.scene import COLOURS, COUNTS, MOTIONS, SHAPES, SOUNDS
from ..model.backbone import Backbone, backbone_for

log = logging.getLogger(__name__)
VISUAL_CLASSES: dict[str, tuple] = {"colour": tuple(COLOURS), "shape": SHAPES, "count": COUNTS, "motion": MOTIONS}
IGNORE = -100


@dataclass
class ClipTensors:
    pixels: torch.Tensor  # (T*h*w, C*patch) as the video processor writes them
    grid: torch.Tensor  # (1, 3)
    features: torch.Tensor  # (n_mels, frames)
    visual_labels: torch.Tensor  # (T, len(VISUAL_CLASSES)), IGNORE where a time step straddles two segments
    audio_labels: torch.Tensor  # (audio tokens,)


def _segment_at(segments: list[dict], t: float) -> dict | None:
    return next((s for s in segments if s["start"] <= t < s["end"]), None)


def segment_per_audio_token(segments: list[dict], n_audio: int, backbone: Backbone) -> list[dict | None]:
    """The ground-truth segment at the middle of each audio token's span (the family's token rate; None past the
    last segment)."""
    start, end = backbone.audio_token_spans(n_audio)
    return [_segment_at(segments, float(t)) for t in (start + end) / 2]


def segment_per_time_step(segments: list[dict], n_frames: int, fps: float, frames_per_step: int) -> list[dict | None]:
    """The segment of each video time step (``frames_per_step`` frames merged into one step of tokens, the
    last step padded as the video processor pads it), or None where the step straddles two segments and so
    has no single label."""
    times = (np.arange(n_frames) + 0.5) / fps
    out = []
    for t in range(-(-n_frames // frames_per_step)):
        hit = [_segment_at(segments, float(x)) for x in times[t * frames_per_step:(t + 1) * frames_per_step]]
        out.append(hit[0] if all(h is not None and h is hit[0] for h in hit) else None)
    return out


def clip_tensors(processor, record: dict, world_dir: Path, media: MediaSettings, backbone: Backbone) -> ClipTensors:
    """Decode one clip with the same settings as training and label each video time step and audio token."""
    path = Path(world_dir) / record["media"]
    clip = decode_video(path, media.fps, media.max_frames, media.max_pixels)
    vp = processor.video_processor(videos=[clip.frames], return_tensors="pt", do_sample_frames=False)
    segs = record["segments"]
    steps = segment_per_time_step(segs, len(clip.frames), clip.fps, processor.video_processor.temporal_patch_size)
    rows = [[VISUAL_CLASSES[a].index(seg[a]) if seg else IGNORE for a in VISUAL_CLASSES] for seg in steps]
    feats = whisper_features(processor.feature_extractor, decode_audio(path))
    audio = [SOUNDS.index(seg["sound"]) if seg else IGNORE
             for seg in segment_per_audio_token(segs, backbone.audio_token_count(feats.shape[-1]), backbone)]
    return ClipTensors(vp["pixel_values_videos"], vp["video_grid_thw"], feats, torch.tensor(rows),
                       torch.tensor(audio))


def readout_loss(outputs: list[tuple[str, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, dict]:
    """Summed cross-entropy of (name, logits, labels) read-outs, skipping IGNORE labels, and
    (correct, counted) per name."""
    loss = torch.zeros(())
    stats: dict[str, tuple[int, int]] = {}
    for name, logits, labels in outputs:
        keep = labels != IGNORE
        loss = loss + nn.functional.cross_entropy(logits[keep], labels[keep])
        stats[name] = (int((logits[keep].argmax(-1) == labels[keep]).sum()), int(keep.sum()))
    return loss, stats


def readout_accuracy(stats: list[dict[str, tuple[int, int]]]) -> dict[str, float]:
    """Accuracy per name over the (correct, counted) stats of several batches."""
    totals: dict[str, list[int]] = {}
    for batch in stats:
        for k, (c, n) in batch.items():
            totals.setdefault(k, [0, 0])
            totals[k][0] += c
            totals[k][1] += n
    return {k: round(c / max(n, 1), 3) for k, (c, n) in totals.items()}


def fit_readout(params: list[nn.Parameter], loss_fn, steps: int, lr: float, label: str) -> None:
    """AdamW with a one-cycle schedule and gradient clipping over ``steps`` calls of ``loss_fn()``."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.05)
    for step in range(1, steps + 1):
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps:
            log.info("%s step %d/%d: loss %.3f", label, step, steps, float(loss))


class EncoderHeads(nn.Module):
    """Linear read-outs on the encoders' LLM-space outputs; discarded after this stage."""

    def __init__(self, hidden: int):
        super().__init__()
        self.visual = nn.ModuleDict({a: nn.Linear(hidden, len(v)) for a, v in VISUAL_CLASSES.items()})
        self.audio = nn.Linear(hidden, len(SOUNDS))

    def forward(self, thinker, clips: list[ClipTensors]) -> tuple[torch.Tensor, dict[str, tuple[int, int]]]:
        """Summed cross-entropy over attributes, and (correct, counted) per attribute."""
        inner = thinker.model
        video = inner.get_video_features(torch.cat([c.pixels for c in clips]), torch.cat([c.grid for c in clips]),
                                         return_dict=True).pooler_output
        # one vector per time step: the mean of that step's merged tokens
        steps = torch.cat([v.view(int(c.grid[0, 0]), -1, v.shape[-1]).mean(1)
                           for v, c in zip(video, clips, strict=True)])
        vlabels = torch.cat([c.visual_labels for c in clips])
        feats, mask = pad_features([c.features for c in clips])
        audio = inner.get_audio_features(feats, mask, return_dict=True).last_hidden_state
        alabels = torch.cat([c.audio_labels for c in clips])
        outs = [(a, head(steps), vlabels[:, k]) for k, (a, head) in enumerate(self.visual.items())]
        outs.append(("sound", self.audio(audio), alabels))
        return readout_loss(outs)


def pretrain_encoders(thinker, processor, world_dir: str | Path, ground_truth: str | Path, media: MediaSettings,
                      steps: int = 600, lr: float = 2e-3, batch_size: int = 16, max_clips: int = 400,
                      seed: int = 0) -> dict:
    """Train the vision tower (with its merger) and the audio tower on per-time-step attribute labels.

    Returns held-out read-out accuracy per attribute (the test clips), which the recipe report records.
    """
    t0 = time.time()
    records = [json.loads(line) for line in Path(ground_truth).read_text().splitlines()]
    backbone = backbone_for(thinker.config)
    train = [clip_tensors(processor, r, Path(world_dir), media, backbone)
             for r in [r for r in records if r["split"] == "train"][:max_clips]]
    test = [clip_tensors(processor, r, Path(world_dir), media, backbone) for r in records if r["split"] == "test"]
    log.info("encoder pretraining: %d train / %d test clips decoded in %.0f s", len(train), len(test), time.time() - t0)
    torch.manual_seed(seed)
    heads = EncoderHeads(thinker.config.text_config.hidden_size)
    inner = thinker.model
    params = [*inner.visual.parameters(), *inner.audio_tower.parameters(), *heads.parameters()]
    rng = random.Random(seed)
    thinker.train()
    fit_readout(params, lambda: heads(thinker, rng.sample(train, min(batch_size, len(train))))[0], steps, lr,
                "encoder pretraining")
    thinker.eval()
    with torch.no_grad():
        accuracy = readout_accuracy([heads(thinker, test[i:i + batch_size])[1]
                                     for i in range(0, len(test), batch_size)])
    log.info("encoder read-out accuracy on held-out clips: %s", accuracy)
    return {"steps": steps, "heldout_readout_accuracy": accuracy, "minutes": round((time.time() - t0) / 60, 1)}
