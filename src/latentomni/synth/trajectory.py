"""Reasoning trajectories with ``[Segment n]`` citations: rule checks and latent-block assembly.

A trajectory (Fig. 12) is text that cites 1-3 segments as ``[Segment n]`` and ends with
``\\boxed{answer}``. Sec. 3.3 replaces each marker by the cited audio-visual segment; in the training
format (``latentomni.data.schema``) that is a ``latent`` part carrying the segment's time window, so a
trajectory becomes ``text, latent, text, ..., text ending in \\boxed{...}`` (Eq. 1's
``[w, u z u', w, ..., a]``).

Everything here is a pure function of strings and numbers, so the rules are tested directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from latentomni.data.answers import boxed_spans
from latentomni.synth.text import normalize_answer

__all__ = [
    "CITATION",
    "TrajectoryProblem",
    "answers_match",
    "check_trajectory",
    "citations",
    "extract_boxed",
    "to_parts",
]

CITATION = re.compile(r"\[Segment (\d+)\]")
# Anything in brackets that starts like a segment reference but is not the canonical form:
# "[Segments 1-2]", "[segment 3]", "[Seg 2]", "[Segment 2, Segment 3]".
_LOOSE_CITATION = re.compile(r"\[\s*seg(?:ment)?s?\b[^\]]*\]", re.IGNORECASE)


@dataclass(frozen=True)
class TrajectoryProblem:
    """Why a trajectory is rejected: a drop-reason code and a sentence for the record."""

    reason: str
    detail: str


def citations(text: str) -> list[int]:
    """Segment numbers cited, in order of appearance (repeats kept)."""
    return [int(m.group(1)) for m in CITATION.finditer(text)]


def extract_boxed(text: str) -> tuple[str, int, int] | None:
    """The content of the last balanced ``\\boxed{...}`` (stripped) with its start and end offsets
    (:func:`latentomni.data.questions.boxed_spans`, the one reader of the convention)."""
    spans = boxed_spans(text)
    if not spans:
        return None
    content, start, end = spans[-1]
    return content.strip(), start, end


_LETTER_ONLY = re.compile(r"^\(?([A-D])\)?[.:]?$")
_LETTER_THEN_TEXT = re.compile(r"^\(?([A-D])[.):]\s+(.+)$", re.DOTALL)


def answers_match(boxed: str, answer: str, options: Sequence[str] | None) -> bool:
    """Does the boxed answer state the ground truth?

    Multiple choice (``options`` given, ``answer`` a letter): the box must hold the letter ("B",
    "(B)", "B."), the letter with its option text, or exactly the option text. No guessing from the
    first capital letter. Open-ended: equal after :func:`normalize_answer`.
    """
    boxed = boxed.strip()
    if not options:
        return normalize_answer(boxed) == normalize_answer(answer)
    texts = {line[0]: normalize_answer(line[3:]) for line in options if len(line) > 3 and line[1:3] == ". "}
    m = _LETTER_ONLY.match(boxed)
    if m:
        return m.group(1) == answer
    m = _LETTER_THEN_TEXT.match(boxed)
    if m:
        return m.group(1) == answer and normalize_answer(m.group(2)) == texts.get(answer)
    matches = [letter for letter, text in texts.items() if text == normalize_answer(boxed)]
    return matches == [answer]


def check_trajectory(
    text: str,
    *,
    n_segments: int,
    answer: str,
    options: Sequence[str] | None,
    min_citations: int = 1,
    max_citations: int = 3,
    banned_phrases: Sequence[str] = (),
) -> TrajectoryProblem | None:
    """The rule check of Sec. 3.3 after the audit: ``None`` if the trajectory is usable."""
    boxed = extract_boxed(text)
    if boxed is None:
        return TrajectoryProblem("no_boxed_answer", "trajectory does not end in \\boxed{...}")
    value, _start, end = boxed
    if text[end:].strip(" \t\n.!"):
        return TrajectoryProblem("text_after_answer", f"text after the boxed answer: {text[end:].strip()[:60]!r}")
    body = text[: boxed[1]]
    strict_spans = {m.span() for m in CITATION.finditer(body)}
    for m in _LOOSE_CITATION.finditer(body):
        if m.span() not in strict_spans:
            return TrajectoryProblem("malformed_citation", f"citation {m.group(0)!r} is not of the form [Segment n]")
    cited = citations(body)
    if not min_citations <= len(cited) <= max_citations:
        return TrajectoryProblem(
            "citation_count", f"{len(cited)} citations; need {min_citations} to {max_citations}"
        )
    bad = sorted({n for n in cited if not 1 <= n <= n_segments})
    if bad:
        return TrajectoryProblem(
            "citation_out_of_range", f"cites segment(s) {bad} but the media has {n_segments} segment(s)"
        )
    if not answers_match(value, answer, options):
        return TrajectoryProblem("answer_mismatch", f"boxed answer {value!r} disagrees with ground truth {answer!r}")
    lowered = body.lower()
    for phrase in banned_phrases:
        if phrase.lower() in lowered:
            return TrajectoryProblem("mentions_source_text", f"trajectory mentions {phrase!r}")
    return None


def to_parts(
    text: str,
    windows: Mapping[int, tuple[float, float]],
    captions: Mapping[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Replace every ``[Segment n]`` by a latent part over segment n's window; keep the text between.

    Whitespace around a marker belongs to neither side; empty text pieces are dropped. Raises
    ``KeyError`` for a citation without a window (the rule check runs first, so that is a bug).
    """
    parts: list[dict[str, Any]] = []
    last = 0
    for m in CITATION.finditer(text):
        piece = text[last : m.start()].strip()
        if piece:
            parts.append({"type": "text", "text": piece})
        n = int(m.group(1))
        start, end = windows[n]
        latent: dict[str, Any] = {"type": "latent", "segment": n, "start": start, "end": end}
        if captions and captions.get(n):
            latent["caption"] = captions[n]
        parts.append(latent)
        last = m.end()
    tail = text[last:].strip()
    if tail:
        parts.append({"type": "text", "text": tail})
    return parts
