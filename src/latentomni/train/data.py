"""Training data: validated JSONL samples, encoded lazily, with bad media skipped and counted.

Before training, every sample's media is probed for what encoding it needs (the container opens, a video
stream where the sample shows a video, an audio track with samples where the sample hears one, cited windows
inside the media): a corrupt video, an audio-only file given as a video or a missing audio track is found in
seconds, listed with its reason in ``skipped.jsonl`` beside the checkpoints, and left out -- the run neither
crashes an hour in nor loses the other samples. A file that still fails when it is encoded (it changed, or
breaks mid-stream) is logged and counted the same way, once, and another sample stands in for it from then
on. ``fail_fast`` turns the first such problem into an error instead.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path

from torch.utils.data import Dataset

from ..data.collate import EncodedSample, SampleEncoder, Variant, collate
from ..data.features import MIN_AUDIO_SECONDS
from ..data.media import AUDIO_SAMPLE_RATE, MediaError, decode_audio, probe_media
from ..data.paths import check_sample_media
from ..data.schema import TrainingSample, iter_samples, resolve_media

log = logging.getLogger(__name__)

_PROBE_AUDIO_SECONDS = 0.5  # decoded from the start of a track to show it holds samples


def probe_sample(sample: TrainingSample, base_dir: Path, use_audio_in_video: bool,
                 seen: dict[tuple, float | MediaError] | None = None) -> None:
    """Raise :class:`MediaError` if the sample's media cannot serve what encoding it needs: a video stream for
    its video, an audio track with samples for the audio it hears (its audio part, or the video's own track
    with ``use_audio_in_video``), latent windows inside the media. Cheap: headers and half a second of audio.
    ``seen`` memoises per file and need, since many questions share one clip."""
    seen = {} if seen is None else seen

    def probe(path: Path, need_video: bool, need_audio: bool) -> float:
        key = (str(path), need_video, need_audio)
        if key not in seen:
            try:
                seen[key] = _probe_file(path, need_video, need_audio)
            except MediaError as e:
                seen[key] = e
        if isinstance(seen[key], MediaError):
            raise seen[key]
        return seen[key]

    duration = None
    if sample.video is not None:
        path = resolve_media(sample.video.video, base_dir)
        duration = probe(path, True, use_audio_in_video and sample.audio is None)
        start = sample.video.video_start or 0.0
        if not math.isnan(duration) and start >= duration:
            raise MediaError(path, f"sample {sample.id}: clip window starts at {start} s, at or after the end of "
                                   f"the video ({duration:.2f} s)", kind="window outside media")
    if sample.audio is not None:
        path = resolve_media(sample.audio.audio, base_dir)
        audio_duration = probe(path, False, True)
        duration = duration if duration is not None else audio_duration
    offset = (sample.video.video_start or 0.0) if sample.video is not None else 0.0
    for block in sample.latent_blocks:
        if duration is not None and not math.isnan(duration) and block.start - offset >= duration:
            raise MediaError(path, f"sample {sample.id}: latent window [{block.start}, {block.end}) s lies "
                                   f"outside the media ({duration:.2f} s)", kind="window outside media")


def _probe_file(path: Path, need_video: bool, need_audio: bool) -> float:
    """The file's duration (its video stream's when it must show one), after checking that it holds what
    encoding will ask of it; the errors are those encoding would raise, by the same kinds."""
    info = probe_media(path)
    if not (info.has_video or info.has_audio):
        raise MediaError(path, "no audio or video stream")
    if need_video and not info.has_video:
        raise MediaError(path, "no video stream (an audio-only file given as a video)")
    if need_audio:
        if not info.has_audio:
            raise MediaError(path, "no audio track")
        wave = decode_audio(path, start=0.0, end=_PROBE_AUDIO_SECONDS)  # stops decoding there
        if len(wave) < MIN_AUDIO_SECONDS * AUDIO_SAMPLE_RATE:
            raise MediaError(path, f"audio track shorter than {MIN_AUDIO_SECONDS * 1000:.0f} ms")
    return info.video_duration if info.has_video and need_video else info.audio_duration


class LatentDataset(Dataset):
    """The training samples whose media probed fine; see the module docstring for what is skipped and how.

    ``skipped`` counts skipped samples by kind, each sample once. ``skipped_log`` (``skipped.jsonl``) gets one
    row per skipped sample id -- ``{"id", "path", "reason", "stage"}``, stage ``probe`` or ``encode`` -- and a
    row is never written twice, whether the same failure comes back next epoch, in another DataLoader worker
    or in a resumed run appending to the same log. With DataLoader workers, encode failures happen in the
    workers; ``skipped`` then reads them back from the log."""

    def __init__(self, path: str | Path, encoder: SampleEncoder, variant: Variant = "latent",
                 fail_fast: bool = False, max_samples: int | None = None, cache: bool = False,
                 skipped_log: str | Path | None = None, media_root: str | Path | None = None,
                 allow_absolute_media: bool = False):
        self.path, self.base_dir = Path(path), Path(path).parent
        self.encoder, self.variant, self.fail_fast = encoder, variant, fail_fast
        self.skipped_log = Path(skipped_log) if skipped_log is not None else None
        self.samples: list[TrainingSample] = []
        self._probe_skipped: Counter[str] = Counter()
        self._encode_failed: dict[int, MediaError] = {}  # sample index -> its error, in this process
        skipped_rows = []
        probed: dict = {}
        for sample in iter_samples(self.path):
            if max_samples is not None and len(self.samples) >= max_samples:
                break
            try:
                check_sample_media(sample, self.base_dir, media_root=media_root, allow_absolute=allow_absolute_media)
                probe_sample(sample, self.base_dir, encoder.media.use_audio_in_video, probed)
            except MediaError as e:
                if fail_fast:
                    raise
                self._probe_skipped[e.kind] += 1
                skipped_rows.append(_row(sample.id, e, "probe"))
                continue
            self.samples.append(sample)
        self._log_skipped(skipped_rows)
        if skipped_rows:
            log.warning("%s: skipped %d of %d samples with bad media: %s", self.path, len(skipped_rows),
                        len(skipped_rows) + len(self.samples), dict(self._probe_skipped))
        if not self.samples:
            raise ValueError(f"{self.path}: no usable training samples (skipped: {dict(self._probe_skipped)})")
        self._cache: dict[int, EncodedSample] | None = {} if cache else None

    @property
    def skipped(self) -> Counter[str]:
        """Skipped samples by kind: those the probe left out, and those that failed when encoded (here, or in
        a DataLoader worker or an earlier run of the same log), each sample once."""
        counts = Counter(self._probe_skipped)
        failed = {self.samples[i].id: e.kind for i, e in self._encode_failed.items()}
        ids = {s.id for s in self.samples}
        failed |= {r["id"]: r["kind"] for r in self._logged_rows() if r.get("stage") == "encode" and r["id"] in ids}
        counts.update(failed.values())
        return counts

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> EncodedSample:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        # A file that probed fine can still fail (changed since, or broken mid-stream): it is logged and counted
        # once, never decoded again by this process, and the next good sample stands in for it.
        for j in range(len(self.samples)):
            idx = (i + j) % len(self.samples)
            if idx in self._encode_failed:
                continue
            try:
                enc = self.encoder.encode(self.samples[idx], self.base_dir, variant=self.variant)
                break
            except MediaError as e:
                if self.fail_fast:
                    raise
                self._encode_failed[idx] = e
                self._log_skipped([_row(self.samples[idx].id, e, "encode")])
                log.warning("skipping sample %s (another sample stands in): %s", self.samples[idx].id, e)
        else:
            raise RuntimeError(f"{self.path}: every one of the {len(self.samples)} samples failed to encode "
                               f"(reasons in {self.skipped_log or 'the log above'})")
        if self._cache is not None:
            self._cache[i] = enc
        return enc

    def _logged_rows(self) -> list[dict]:
        if self.skipped_log is None or not self.skipped_log.is_file():
            return []
        return [json.loads(line) for line in self.skipped_log.read_text(encoding="utf-8").splitlines() if line]

    def _log_skipped(self, rows: list[dict]) -> None:
        """Append the rows whose sample id the log does not hold yet."""
        if self.skipped_log is None or not rows:
            return
        logged = {r["id"] for r in self._logged_rows()}
        new = [r for r in rows if r["id"] not in logged]
        if new:
            self.skipped_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.skipped_log, "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in new)


def _row(sample_id: str, error: MediaError, stage: str) -> dict:
    return {"id": sample_id, "path": error.path, "reason": error.reason, "kind": error.kind, "stage": stage}


class Collator:
    """Pads encoded samples (right padding) into one batch for :class:`LatentOmniModel.forward`."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[EncodedSample]) -> dict:
        batch = collate(items, self.pad_id, padding_side="right")
        batch.pop("sample_ids", None)  # the Trainer only moves tensors; ids are for error messages elsewhere
        return batch
