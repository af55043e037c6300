"""The synthetic audio-visual world: the embedded default data that ``make demo`` trains and evaluates on.

Short procedural clips (2–4 segments of 1.5–2 s, each a coloured shape event and a tone / noise / silence
event) are rendered to real H.264 + AAC files, and questions about them are built so that no single
modality answers them (``questions.py`` says how, and the tests check it by brute force). Reasoning
samples cite the segments they revisit as latent blocks; perception samples pre-train a tiny base model.

    from latentomni.data.world import generate_world
    manifest = generate_world("runs/world", n_train_clips=400, n_test_clips=200, seed=0, workers=2)
    manifest.path("train")   # runs/world/train.jsonl

Modules: ``scene`` (ground truth, captions), ``draw`` (pixels, samples, encoding), ``questions``
(question types, trajectories, the both-modalities check), ``perception`` (pre-training samples),
``generate`` (splits, files, manifest).
"""

from latentomni.data.world.generate import WorldConfig, WorldManifest, generate_world, load_manifest
from latentomni.data.world.questions import (
    DEFAULT_HELD_OUT,
    QUESTION_TYPES,
    Question,
    QuestionType,
    make_question,
    single_modality_answers,
)
from latentomni.data.world.scene import Clip, Segment, Visual, clip_from_record, sample_clip

__all__ = [
    "DEFAULT_HELD_OUT",
    "QUESTION_TYPES",
    "Clip",
    "Question",
    "QuestionType",
    "Segment",
    "Visual",
    "WorldConfig",
    "WorldManifest",
    "clip_from_record",
    "generate_world",
    "load_manifest",
    "make_question",
    "sample_clip",
    "single_modality_answers",
]
