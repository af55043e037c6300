"""The one multiple-choice answer extractor every benchmark is scored with.

Order of evidence, strongest first:

1. ``\\boxed{...}`` -- the last one in the reply (a model may box a first guess and then correct itself);
   its content may be a letter ("B", "(B)", "b"), a labelled option ("B. text") or an option's text.
2. An explicit statement: "the answer is X", "Answer: X", "the correct option is (X)", "option X is correct",
   or a closing "..., so X.".
   The last one that names a valid option wins.
3. A reply that *is* an answer: just the letter ("B", "(B).") or the letter followed by that option's text.
4. Option text: the final sentence, else the whole reply, mentions exactly one option's text.

There is deliberately no fallback to a fixed letter or to the first capital in the reply ("A man walks...",
"I think..."): a reply none of the rules can read returns ``None``, is scored wrong, and is counted in the
parse-failure rate so that a formatting regression shows up as such instead of as a quiet accuracy change.
Latent spans (``<Unified_Latent>...</Unified_Latent>`` as the predictor renders them) are removed first:
they carry no text and their bracketed placeholders must not be read as answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Any <...Latent...>...</...Latent...> span, whatever the exact tag name the model module settles on.
_LATENT_SPAN = re.compile(r"<(\w*latent\w*)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_STRAY_TAG = re.compile(r"</?\w*latent\w*>|<\|[^|<>]*\|>", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\s*\{")
_TEX_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")

# A letter at the start of a fragment counts only when nothing word-like follows it, or a connective does:
# "B", "B.", "(B)", "B, because", but not "A man walks" or "a dog".
_LEAD_PAREN = re.compile(r"^[(\[]([A-Za-z])[)\]]")
_LEAD_LETTER = re.compile(r"^([A-Za-z])(?=\s*$|\s*[.:)\],;!?]|\s+(?:because|since|as|which|so)\b|\s+[-\u2013\u2014]\s)")

_MARKUP = r"[*_]*\s*"  # markdown emphasis between "Answer" and ":"
_EXPLICIT_PHRASE = re.compile(
    r"(?:\b(?:final\s+|correct\s+|right\s+|best\s+)?answer\b|\b(?:correct|right|best|final)\s+(?:option|choice)\b)"
    + _MARKUP
    + r"(?:is|:|would\s+be|should\s+be|will\s+be|=)\s*:?\s*(?P<rest>[^\n]*)",
    re.IGNORECASE,
)
_OPTION_IS_CORRECT = re.compile(
    r"\b(?:option|choice)\s*[(\[]?(?P<letter>[A-Za-z])[)\]]?\s+is\s+(?:the\s+)?(?:correct|right|best)\b",
    re.IGNORECASE,
)
_LETTER_IS_CORRECT = re.compile(
    r"(?<![\w.])[(\[]?(?P<letter>[A-Z])[)\]]?\s+is\s+the\s+(?:correct|right|best)\s+(?:answer|option|choice)\b"
)
# "..., so B." closing the reply: an upper-case letter and nothing after it.
_CONCLUDING_LETTER = re.compile(
    r"\b(?:so|thus|therefore|hence)\s*,?\s*(?:it(?:'s|\s+is)\s+)?(?:option\s+)?[(\[]?(?P<letter>(?-i:[A-Z]))[)\]]?"
    r"\s*[.!]?\s*$",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_NON_ALNUM = re.compile(r"[\W_]+")
_OPTION_LABEL = re.compile(r"^([A-Z])\.\s")


@dataclass(frozen=True)
class Choice:
    """A parsed reply: the chosen letter (``None`` when unreadable) and which rule read it."""

    letter: str | None
    method: str | None  # "boxed", "explicit", "bare", "option_text" or None


def extract_choice(reply: str, options: Sequence[str]) -> str | None:
    """The option letter ``reply`` commits to, or ``None``. ``options`` are "A. text" strings."""
    return parse_choice(reply, options).letter


def parse_choice(reply: str, options: Sequence[str]) -> Choice:
    """Like ``extract_choice`` but also says which rule decided, for the parse statistics in results.json."""
    letters = [chr(ord("A") + i) for i in range(len(options))]
    texts = [_strip_label(opt, letter) for opt, letter in zip(options, letters, strict=True)]
    text = _STRAY_TAG.sub(" ", _LATENT_SPAN.sub(" ", reply or ""))

    boxed = _boxed_contents(text)
    if boxed:
        letter = _read_fragment(boxed[-1], letters, texts)
        if letter:
            return Choice(letter, "boxed")
    for letter in _explicit_letters(text, letters, texts):
        return Choice(letter, "explicit")
    letter = _bare_answer(text, letters, texts)
    if letter:
        return Choice(letter, "bare")
    letter = _option_text_in_reply(text, letters, texts)
    if letter:
        return Choice(letter, "option_text")
    return Choice(None, None)


def _strip_label(option: str, letter: str) -> str:
    m = _OPTION_LABEL.match(option)
    return option[m.end() :] if m and m.group(1) == letter else option


def _boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}``, braces balanced (``\\boxed{\\text{B}}`` is one box)."""
    found = []
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found.append(text[m.end() : i - 1])
    return found


def _clean(fragment: str) -> str:
    s = fragment
    while True:
        unwrapped = _TEX_WRAPPER.sub(r"\1", s)
        if unwrapped == s:
            break
        s = unwrapped
    s = s.replace("$", " ").replace("*", " ").replace("`", " ").strip().strip("\"'")
    return re.sub(r"^(?:option|choice)\s+", "", s.strip(), flags=re.IGNORECASE)


def _read_fragment(fragment: str, letters: list[str], texts: list[str]) -> str | None:
    """A letter (any case, optionally parenthesised or followed by its text) or an option's text."""
    s = _clean(fragment)
    m = _LEAD_PAREN.match(s) or _LEAD_LETTER.match(s)
    if m:
        letter = m.group(1).upper()
        return letter if letter in letters else None
    return _unique_option_in(s, letters, texts)


def _explicit_letters(text: str, letters: list[str], texts: list[str]):
    """Letters named by explicit answer statements, last statement first."""
    hits: list[tuple[int, str | None]] = []
    for m in _EXPLICIT_PHRASE.finditer(text):
        hits.append((m.start(), _read_fragment(m.group("rest"), letters, texts)))
    for pattern in (_OPTION_IS_CORRECT, _LETTER_IS_CORRECT, _CONCLUDING_LETTER):
        for m in pattern.finditer(text):
            letter = m.group("letter").upper()
            hits.append((m.start(), letter if letter in letters else None))
    for _pos, letter in sorted(hits, key=lambda h: h[0], reverse=True):
        if letter:
            yield letter


def _bare_answer(text: str, letters: list[str], texts: list[str]) -> str | None:
    """The reply is only a letter, or a letter followed by exactly that option's text."""
    s = _clean(text)
    m = re.fullmatch(r"[(\[]?([A-Za-z])[)\]]?[.:]?", s)
    if m:
        letter = m.group(1).upper()
        return letter if letter in letters else None
    m = re.match(r"[(\[]?([A-Z])(?:[)\]]|[.:)])\s*(.+)", s, flags=re.DOTALL)
    if m and m.group(1) in letters:
        rest = _norm(m.group(2))
        own = _norm(texts[letters.index(m.group(1))])
        if own and (rest == own or rest.startswith(own + " ")):
            return m.group(1)
    return None


def _option_text_in_reply(text: str, letters: list[str], texts: list[str]) -> str | None:
    sentences = [s for s in _SENTENCE_END.split(text) if _norm(s)]
    if sentences:
        letter = _unique_option_in(sentences[-1], letters, texts)
        if letter:
            return letter
    return _unique_option_in(text, letters, texts)


def _norm(s: str) -> str:
    return _NON_ALNUM.sub(" ", s.casefold()).strip()


def _unique_option_in(text: str, letters: list[str], texts: list[str]) -> str | None:
    """The only option whose text occurs in ``text`` (as whole words, any casing), else None.

    An option whose text only occurs as part of a longer matching option ("red" inside "red and blue")
    does not count as a second match.
    """
    haystack = f" {_norm(text)} "
    found = {}
    for letter, option in zip(letters, texts, strict=True):
        needle = _norm(option)
        if needle and f" {needle} " in haystack:
            found[letter] = needle
    maximal = [
        letter
        for letter, needle in found.items()
        if not any(other != needle and f" {needle} " in f" {other} " for other in found.values())
    ]
    return maximal[0] if len(maximal) == 1 else None
