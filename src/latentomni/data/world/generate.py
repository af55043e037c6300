"""Generate the synthetic world on disk: clips, question splits, perception data, captions, manifest.

Everything drawn at random comes from a stream keyed by ``(seed, split, clip index, purpose)``, so clips do
not depend on the number of workers or on the order they finish rendering. Questions are drawn in clip
order (answer balancing looks at the questions drawn so far). The same seed writes byte-identical files.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from latentomni.data.schema import TrainingSample, write_samples
from latentomni.data.world.draw import render_clip
from latentomni.data.world.perception import option_copy_sample, perception_samples
from latentomni.data.world.questions import (
    DEFAULT_HELD_OUT,
    QUESTION_TYPES,
    AnswerBalance,
    OptionOrder,
    Question,
    make_question,
    trajectory,
)
from latentomni.data.world.scene import Clip, caption_record, sample_clip, segment_plans, truth_record

Split = Literal["train", "test", "val"]
_SPLIT_CODE = {"train": 1, "test": 2, "val": 3}
_STREAM = {"clip": 0, "questions": 1, "perception": 2, "copy": 3, "seen_questions": 4}
MAX_CLIP_SECONDS = 8.0
CLIP_DIR = "clips"


class WorldConfig(BaseModel):
    """What the world contains. Runtime knobs (workers, whether to render) are arguments of
    :func:`generate_world` instead, because they must not change the data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    n_train_clips: int = Field(default=400, ge=0)
    n_test_clips: int = Field(default=200, ge=0)
    # Validation clips (seen question types) for choosing settings; drawn after, and never read by, the two
    # splits above, so adding them leaves train and test byte-identical.
    n_val_clips: int = Field(default=0, ge=0)
    questions_per_clip: int = Field(default=3, ge=1)
    perception_probes_per_clip: int = Field(default=4, ge=0)
    held_out_types: tuple[str, ...] = DEFAULT_HELD_OUT
    segment_seconds: tuple[float, ...] = (1.5, 2.0)
    # Clip lengths are whole multiples of this (see scene.segment_plans: 1 s keeps a 2 fps sampler on grid).
    clip_seconds_multiple: float = Field(default=1.0, gt=0)
    min_segments: int = Field(default=2, ge=2)
    max_segments: int = Field(default=4, ge=2)
    frame_size: int = Field(default=56, ge=16)
    fps: float = Field(default=4.0, gt=0)
    sample_rate: int = Field(default=44100, gt=0)
    option_order: OptionOrder = "shuffled"

    @model_validator(mode="after")
    def _check(self) -> WorldConfig:
        unknown = set(self.held_out_types) - set(QUESTION_TYPES)
        if unknown:
            raise ValueError(f"unknown held-out question types {sorted(unknown)}; choose from {sorted(QUESTION_TYPES)}")
        if not self.seen_types:
            raise ValueError("every question type is held out; training would have no reasoning questions")
        if self.min_segments > self.max_segments:
            raise ValueError(f"min_segments ({self.min_segments}) > max_segments ({self.max_segments})")
        if not self.segment_seconds or min(self.segment_seconds) <= 0:
            raise ValueError(f"segment_seconds must be positive, got {self.segment_seconds}")
        longest = self.max_segments * max(self.segment_seconds)
        if longest > MAX_CLIP_SECONDS:
            raise ValueError(f"clips could last {longest} s ({self.max_segments} x {max(self.segment_seconds)} s); "
                             f"keep them within {MAX_CLIP_SECONDS} s")
        for s in self.segment_seconds:
            if abs(s * self.fps - round(s * self.fps)) > 1e-9:
                raise ValueError(f"segment length {s} s is not a whole number of frames at {self.fps} fps")
        for n in range(self.min_segments, self.max_segments + 1):
            if not segment_plans(self.segment_seconds, n, self.clip_seconds_multiple):
                raise ValueError(f"no {n} segments of {self.segment_seconds} s add up to a multiple of "
                                 f"clip_seconds_multiple={self.clip_seconds_multiple} s")
        if self.frame_size % 2:
            raise ValueError(f"frame_size must be even for yuv420p, got {self.frame_size}")
        return self

    @property
    def seen_types(self) -> tuple[str, ...]:
        return tuple(t for t in QUESTION_TYPES if t not in self.held_out_types)


class WorldManifest(BaseModel):
    """What :func:`generate_world` wrote. ``files`` and ``counts`` are keyed by the file's role:
    ``train``, ``test`` (held-out question types, new clips), ``test_seen`` (seen types, the same new
    clips), ``val`` (seen types, clips of neither split), ``perception``, ``captions``, ``ground_truth``.
    Paths are relative to ``out_dir``, as are the media paths inside the files."""

    out_dir: Path = Field(exclude=True)
    # Seconds this call spent rendering (None when it rendered nothing); not written, it varies by machine.
    render_seconds: float | None = Field(default=None, exclude=True)
    config: WorldConfig
    rendered: bool
    files: dict[str, str]
    counts: dict[str, int]
    question_types: dict[str, dict[str, int]]

    def path(self, role: str) -> Path:
        return self.out_dir / self.files[role]


def _rng(seed: int, split: Split, index: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODE[split], index, _STREAM[purpose]])


def media_path(clip: Clip) -> str:
    return f"{CLIP_DIR}/{clip.id}.mp4"


def make_clips(config: WorldConfig, split: Split, n: int, avoid: set | None = None) -> list[Clip]:
    """The split's clips; ``avoid`` holds signatures of clips another split already has, redrawn here."""
    clips = []
    for i in range(n):
        rng = _rng(config.seed, split, i, "clip")
        while True:
            clip = sample_clip(rng, f"{split}-{i:06d}", config.segment_seconds,
                               (config.min_segments, config.max_segments), config.clip_seconds_multiple)
            if not avoid or clip.signature() not in avoid:
                break
        clips.append(clip)
    return clips


def questions_for(rng: np.random.Generator, clip: Clip, types: Iterable[str], limit: int,
                  balance: AnswerBalance | None = None, option_order: OptionOrder = "shuffled") -> list[Question]:
    """Up to ``limit`` questions of distinct types, tried in random order, that ``clip`` supports."""
    types = list(types)
    out = []
    for i in rng.permutation(len(types)):
        q = make_question(rng, QUESTION_TYPES[types[int(i)]], clip, balance, option_order)
        if q is not None:
            if balance is not None:
                balance.add(q)
            out.append(q)
            if len(out) == limit:
                break
    return out


def reasoning_sample(rng: np.random.Generator, question: Question, clip: Clip, sid: str) -> TrainingSample:
    """The ``TrainingSample`` of a question: the clip and the lettered question, then a trajectory citing
    the segments it revisits as latent blocks."""
    return TrainingSample.model_validate({
        "id": sid,
        "messages": [
            {"role": "user", "content": [{"type": "video", "video": media_path(clip)},
                                         {"type": "text", "text": question.prompt}]},
            {"role": "assistant", "content": trajectory(rng, question, clip)},
        ],
        "answer": question.letter,
        "options": question.lettered_options,
        "question_type": question.qtype.name,
        "modality": "AV-Strong",
        "source": "world",
        "meta": {"clip": clip.id, "duration": clip.duration, "answer_text": question.answer,
                 "anchor": question.anchor_value,
                 # every segment's window: the contrastive latent loss and the retrieval diagnostic tell
                 # the cited segment apart from the clip's others (data/collate.py reads it)
                 "segments": [[seg.start, seg.end] for seg in clip.segments]},
    })


def _reasoning(config: WorldConfig, split: Split, clips: list[Clip], types: tuple[str, ...],
               stream: str) -> list[TrainingSample]:
    out = []
    balance = AnswerBalance()
    for i, clip in enumerate(clips):
        rng = _rng(config.seed, split, i, stream)
        for k, q in enumerate(questions_for(rng, clip, types, config.questions_per_clip, balance, config.option_order)):
            out.append(reasoning_sample(rng, q, clip, f"world-{clip.id}-q{k + 1}"))
    return out


def _render_job(job: tuple[Clip, str, int, float, int]) -> str:
    clip, path, size, fps, sr = job
    render_clip(clip, path, size, fps, sr)
    return path


def render_clips(clips: list[Clip], out_dir: Path, config: WorldConfig, workers: int = 1,
                 progress: bool = False) -> None:
    """Render clips to ``out_dir/clips``; with ``workers`` > 1 in a process pool (output is identical)."""
    jobs = [(c, str(out_dir / media_path(c)), config.frame_size, config.fps, config.sample_rate) for c in clips]
    (out_dir / CLIP_DIR).mkdir(parents=True, exist_ok=True)
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            done: Iterable[str] = pool.imap_unordered(_render_job, jobs, chunksize=8)
            _drain(done, len(jobs), progress)
    else:
        _drain(map(_render_job, jobs), len(jobs), progress)


def _drain(results: Iterable[str], total: int, progress: bool) -> None:
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=total, desc="rendering clips", unit="clip")
    for _ in results:
        pass


def generate_world(
    out_dir: str | Path,
    n_train_clips: int = 400,
    n_test_clips: int = 200,
    seed: int = 0,
    *,
    workers: int = 1,
    render: bool = True,
    reuse: bool = True,
    progress: bool = False,
    **options: Any,
) -> WorldManifest:
    """Write the synthetic audio-visual world under ``out_dir`` and return its manifest.

    Files (JSONL unless noted), all media paths relative to ``out_dir``:

    * ``clips/{split}-{i:06d}.mp4`` — H.264 + AAC (44.1 kHz) renders, unless ``render=False``;
    * ``train.jsonl`` — reasoning samples of the seen question types on the training clips;
    * ``test.jsonl`` — the held-out question types on new clips (no template seen in training);
    * ``test_seen.jsonl`` — the seen question types on the same new clips;
    * ``val.jsonl`` — the seen question types on ``n_val_clips`` clips of their own (none by default), for
      choosing settings without looking at the test split; they are drawn after the train and test clips
      from streams of their own and avoid both splits' clips, so every other file's train and test rows are
      byte-identical with or without them;
    * ``perception.jsonl`` — captions, single-modality probes and option copying on the training clips;
    * ``captions.jsonl`` — per-clip caption and timestamped visual and audio events (both splits), in the
      native source format of :mod:`latentomni.synth.sources`, so the synthesis pipeline can ingest them;
    * ``ground_truth.jsonl`` — per-clip segments with their attributes and visual/audio/fused captions;
    * ``manifest.json`` — this manifest (config, files, counts, question types per file).

    ``options`` are the other :class:`WorldConfig` fields (e.g. ``questions_per_clip``, ``held_out_types``,
    ``frame_size``, ``fps``). ``workers`` renders in that many processes (spawned: a script that calls
    this with ``workers > 1`` needs the ``if __name__ == "__main__":`` guard). With ``reuse``, clips are
    not rendered again when ``out_dir`` holds a finished world of the same config (rendering is
    deterministic, so they would come out identical).
    """
    config = WorldConfig(seed=seed, n_train_clips=n_train_clips, n_test_clips=n_test_clips, **options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_clips = make_clips(config, "train", config.n_train_clips)
    test_clips = make_clips(config, "test", config.n_test_clips, avoid={c.signature() for c in train_clips})
    val_clips = make_clips(config, "val", config.n_val_clips,
                           avoid={c.signature() for c in train_clips + test_clips})

    samples: dict[str, list[TrainingSample]] = {
        "train": _reasoning(config, "train", train_clips, config.seen_types, "questions"),
        "test": _reasoning(config, "test", test_clips, config.held_out_types, "questions"),
        "test_seen": _reasoning(config, "test", test_clips, config.seen_types, "seen_questions"),
        "val": _reasoning(config, "val", val_clips, config.seen_types, "questions"),
        "perception": [],
    }
    for i, clip in enumerate(train_clips):
        rng = _rng(config.seed, "train", i, "perception")
        samples["perception"] += perception_samples(rng, clip, media_path(clip), config.perception_probes_per_clip)
        samples["perception"].append(option_copy_sample(_rng(config.seed, "train", i, "copy"), f"world-copy-{i:06d}"))

    clips = train_clips + test_clips + val_clips
    render_seconds = None
    if render and not (reuse and _already_rendered(out, config, clips)):
        started = time.perf_counter()
        render_clips(clips, out, config, workers, progress)
        render_seconds = time.perf_counter() - started
    files = {role: f"{role}.jsonl" for role in (*samples, "captions", "ground_truth")}
    for role, rows in samples.items():
        write_samples(rows, out / files[role])
    # Validation clips go last, so the rows of the train and test clips are the same with or without them.
    splits = [("train", c) for c in train_clips] + [("test", c) for c in test_clips] + [("val", c) for c in val_clips]
    _write_jsonl(out / files["captions"], (caption_record(c, media_path(c)) for _, c in splits))
    _write_jsonl(out / files["ground_truth"], (truth_record(c, media_path(c), split) for split, c in splits))

    counts = {role: len(rows) for role, rows in samples.items()}
    counts |= {"captions": len(splits), "ground_truth": len(splits), "train_clips": len(train_clips),
               "test_clips": len(test_clips), "val_clips": len(val_clips)}
    manifest = WorldManifest(
        out_dir=out, render_seconds=render_seconds, config=config, rendered=render, files=files, counts=counts,
        question_types={role: dict(sorted(Counter(s.question_type for s in rows).items()))
                        for role, rows in samples.items() if role != "perception"},
    )
    (out / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return manifest


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _already_rendered(out: Path, config: WorldConfig, clips: list[Clip]) -> bool:
    """A previous run wrote the manifest last, so its presence with the same config means it finished."""
    try:
        previous = load_manifest(out)
    except (OSError, ValueError):
        return False
    return previous.rendered and previous.config == config and all((out / media_path(c)).is_file() for c in clips)


def load_manifest(out_dir: str | Path) -> WorldManifest:
    """The manifest a previous :func:`generate_world` wrote in ``out_dir``."""
    out = Path(out_dir)
    data = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return WorldManifest.model_validate({**data, "out_dir": out})
