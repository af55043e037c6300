"""Small text rules the pipeline checks programmatically instead of trusting the model.

Caption fusion (Fig. 10) must keep every sentence of the video and the audio caption; whether it did
is a string question, so it is answered here rather than by another model call.
"""

from __future__ import annotations

import re
import string

__all__ = ["missing_sentences", "normalize_answer", "normalize_sentence", "split_sentences"]

# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) before whitespace and an
# uppercase letter, digit or opening quote. Conservative on purpose: a missed split only makes the
# fusion check stricter (a longer sentence must appear verbatim), never looser.
_BOUNDARY = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "—": "-", "–": "-"})


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences; empty pieces are dropped."""
    text = " ".join(text.split())
    if not text:
        return []
    pieces: list[str] = []
    last = 0
    for m in _BOUNDARY.finditer(text):
        pieces.append(text[last : m.start()].strip())
        last = m.end()
    pieces.append(text[last:].strip())
    return [p for p in pieces if p]


def normalize_sentence(sentence: str) -> str:
    """Case, whitespace, quote style and terminal punctuation do not count as changing a sentence."""
    s = " ".join(sentence.translate(_QUOTES).split()).lower()
    return s.rstrip(".!?;:, ")


def missing_sentences(sources: list[str], fused: str) -> list[str]:
    """The sentences of ``sources`` (captions) that do not appear verbatim in ``fused``."""
    haystack = normalize_sentence(fused)
    missing = []
    for source in sources:
        for sentence in split_sentences(source):
            needle = normalize_sentence(sentence)
            if needle and needle not in haystack:
                missing.append(sentence)
    return missing


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Open-ended answers compare after lower-casing and dropping punctuation, articles, extra spaces."""
    text = text.translate(_QUOTES).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())
