"""Evaluation harness: benchmark adapters (one module each), the shared answer extractor, the runner that
streams, resumes and shards predictions, scoring with the papers' breakdowns, and run comparison.

Nothing here imports the model; a ``Predictor`` (``latentomni.inference.predictor.LatentOmniPredictor`` in real runs)
is passed in.
"""

from latentomni.data.answers import extract_choice, parse_choice
from latentomni.data.questions import EvalItem, Predictor, render_question
from latentomni.eval.benchmarks import BENCHMARKS, get_benchmark
from latentomni.eval.runner import run_eval

__all__ = [
    "BENCHMARKS",
    "EvalItem",
    "Predictor",
    "extract_choice",
    "get_benchmark",
    "parse_choice",
    "render_question",
    "run_eval",
]
