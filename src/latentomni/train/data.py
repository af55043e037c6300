"""Training data: validated JSONL samples, encoded lazily, with bad media skipped and counted.

Before training, every sample's media is probed (container opens, streams present, cited windows inside
the media): a corrupt video or a missing audio track is found in seconds, listed with its reason in
``skipped.jsonl`` beside the checkpoints, and left out -- the run neither crashes an hour in nor loses the
other samples. ``fail_fast`` turns the first such problem into an error instead.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from torch.utils.data import Dataset

from ..data.collate import EncodedSample, SampleEncoder, Variant, collate
from ..data.media import MediaError, decode_audio, probe_duration
from ..data.schema import TrainingSample, iter_samples, resolve_media

log = logging.getLogger(__name__)


def probe_sample(sample: TrainingSample, base_dir: Path, use_audio_in_video: bool,
                 seen: dict[tuple, float | MediaError] | None = None) -> None:
    """Raise :class:`MediaError` if the sample's media cannot serve it (cheap: headers, audio presence).
    ``seen`` memoises per file, since many questions share one clip."""
    seen = {} if seen is None else seen

    def probe(path: Path, need_audio: bool) -> float:
        key = (str(path), need_audio)
        if key not in seen:
            try:
                d = probe_duration(path)
                if need_audio:
                    decode_audio(path, start=0.0, end=min(d, 0.5) if d == d else 0.5)
                seen[key] = d
            except MediaError as e:
                seen[key] = e
        if isinstance(seen[key], MediaError):
            raise seen[key]
        return seen[key]

    duration = None
    if sample.video is not None:
        path = resolve_media(sample.video.video, base_dir)
        duration = probe(path, use_audio_in_video and sample.audio is None)
    if sample.audio is not None:
        path = resolve_media(sample.audio.audio, base_dir)
        duration = duration or probe(path, False)
    offset = (sample.video.video_start or 0.0) if sample.video is not None else 0.0
    for block in sample.latent_blocks:
        if duration is not None and duration == duration and block.start - offset >= duration:
            raise MediaError(path, f"sample {sample.id}: latent window [{block.start}, {block.end}) s lies "
                                   f"outside the media ({duration:.2f} s)", kind="window outside media")


class LatentDataset(Dataset):
    def __init__(self, path: str | Path, encoder: SampleEncoder, variant: Variant = "latent",
                 fail_fast: bool = False, max_samples: int | None = None, cache: bool = False,
                 skipped_log: str | Path | None = None):
        self.path, self.base_dir = Path(path), Path(path).parent
        self.encoder, self.variant, self.fail_fast = encoder, variant, fail_fast
        self.samples: list[TrainingSample] = []
        self.skipped: Counter[str] = Counter()
        skipped_rows = []
        probed: dict = {}
        for sample in iter_samples(self.path):
            if max_samples is not None and len(self.samples) >= max_samples:
                break
            try:
                probe_sample(sample, self.base_dir, encoder.media.use_audio_in_video, probed)
            except MediaError as e:
                if fail_fast:
                    raise
                self.skipped[e.kind] += 1
                skipped_rows.append({"id": sample.id, "path": e.path, "reason": e.reason})
                continue
            self.samples.append(sample)
        if skipped_log is not None and skipped_rows:
            Path(skipped_log).parent.mkdir(parents=True, exist_ok=True)
            with open(skipped_log, "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in skipped_rows)
        if skipped_rows:
            log.warning("%s: skipped %d of %d samples with bad media: %s", self.path, len(skipped_rows),
                        len(skipped_rows) + len(self.samples), dict(self.skipped))
        if not self.samples:
            raise ValueError(f"{self.path}: no usable training samples (skipped: {dict(self.skipped)})")
        self._cache: dict[int, EncodedSample] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> EncodedSample:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        # A file that probed fine can still fail mid-stream; then the next sample stands in and it is counted.
        for j in range(len(self.samples)):
            idx = (i + j) % len(self.samples)
            try:
                enc = self.encoder.encode(self.samples[idx], self.base_dir, variant=self.variant)
                break
            except MediaError as e:
                if self.fail_fast:
                    raise
                self.skipped[e.kind] += 1
                log.warning("skipping sample %s: %s", self.samples[idx].id, e)
        else:
            raise RuntimeError("every sample failed to decode")
        if self._cache is not None:
            self._cache[i] = enc
        return enc


class Collator:
    """Pads encoded samples (right padding) into one batch for :class:`LatentOmniModel.forward`."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[EncodedSample]) -> dict:
        batch = collate(items, self.pad_id, padding_side="right")
        batch.pop("sample_ids", None)  # the Trainer only moves tensors; ids are for error messages elsewhere
        return batch
