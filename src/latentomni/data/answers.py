"""The one reader of answers: the ``\\boxed{...}`` convention (:func:`boxed_spans`) and the one multiple-choice
answer extractor every benchmark is scored with (:func:`extract_choice`).

It sits in the data layer, beside the question (``data.questions``), so that ``infer``, eval's scoring, the
synth pipeline's trajectory rules and the experiments all read a reply the same way.

Order of evidence of the extractor, strongest first:

Order of evidence, strongest first:

1. ``\\boxed{...}`` -- the last one in the reply (a model may box a first guess and then correct itself);
   its content may be a letter ("B", "(B)", "b"), a labelled option ("B. text") or an option's text.
2. An explicit statement: "the answer is X", "Answer: X", "the correct option is (X)", "option X is correct",
   or a closing "..., so X.".
   The last one that names a valid option wins.
3. A reply that *is* an answer: just the letter ("B", "(B).") or the letter followed by that option's text.
4. Option text stated as the answer: the reply's final sentence (its conclusion) mentions exactly one
   option's text. An option mentioned only earlier, while the reply describes the clip, does not count.

Numeric options ("1", "2", "3", "4") need more than an occurring digit, because replies are full of numbers
that are not answers: a number is read only as a whole number ("2:42", "2.5", "1/2", "2-3", "1st" hold no
"2" or "1"), and outside an explicit statement or a box only as a count -- "3 boats", "there are 3", a
reply that is just "3" -- never as a label or a time ("Segment 1", "at 2 seconds", "option 2", "#1").

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
_TEX_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")

_BOXED = re.compile(r"\\boxed\s*\{")


def boxed_spans(text: str) -> list[tuple[str, int, int]]:
    """Every ``\\boxed{...}`` of ``text`` in order, braces balanced (``\\boxed{\\text{B}}`` is one box):
    its content (unstripped), its start and its end offset. An unclosed box is not one.

    The one reader of the answer convention the prompt asks for (``data.questions.ANSWER_INSTRUCTION``, the paper's
    ``\\boxed{answer}``): the answer parser of eval, the trajectory rules of synth and ``infer`` all use it,
    so a box that one of them reads the others read the same way."""
    found = []
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found.append((text[m.end() : i - 1], m.start(), i))
    return found


def last_boxed(text: str) -> str | None:
    """The content of the last balanced ``\\boxed{...}`` (stripped), or None: a reply's final answer."""
    spans = boxed_spans(text)
    return spans[-1][0].strip() if spans else None



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
_NUMERIC_OPTION = re.compile(r"[+-]?\d+(?:\.\d+)?")
# Words after which a number names a thing (a segment, a time, an option) instead of counting one.
_LABEL_WORDS = frozenset({
    "at", "after", "before", "around", "by", "from", "until", "till", "since", "segment", "segments", "clip",
    "clips", "part", "step", "scene", "shot", "frame", "option", "options", "choice", "choices", "chapter",
    "section", "number", "no", "num", "track", "speaker", "person", "camera", "video", "page", "item", "question",
    "round", "level", "minute", "minutes", "second", "seconds", "sec", "secs", "min", "mins", "hour", "hours",
    "line", "episode", "stage", "phase", "block", "timestamp", "time",
})
_COPULAS = frozenset({"is", "are", "was", "were"})


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

    boxed = [content for content, _start, _end in boxed_spans(text)]
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
    return _unique_option_in(s, letters, texts, stated=True)


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
    """Rule 4: the one option the reply's final sentence states (a mention earlier in the reply is not an answer)."""
    sentences = [s for s in _SENTENCE_END.split(text) if _norm(s)]
    return _unique_option_in(sentences[-1], letters, texts, stated=False) if sentences else None


def _norm(s: str) -> str:
    return _NON_ALNUM.sub(" ", s.casefold()).strip()


def _unique_option_in(text: str, letters: list[str], texts: list[str], *, stated: bool) -> str | None:
    """The only option whose text occurs in ``text`` (as whole words, any casing), else None.

    ``stated`` says ``text`` is already stated as the answer (a box's content, the rest of "the answer is");
    otherwise a numeric option must occur as a count (:func:`_counts`). An option whose text only occurs as
    part of a longer matching option ("red" inside "red and blue") does not count as a second match.
    """
    haystack = f" {_norm(text)} "
    found = {}
    for letter, option in zip(letters, texts, strict=True):
        needle = _norm(option)
        if not needle:
            continue
        number = option.strip().rstrip(".")
        if _NUMERIC_OPTION.fullmatch(number):
            if any(stated or _counts(text, m) for m in _whole_numbers(text, number)):
                found[letter] = needle
        elif f" {needle} " in haystack:
            found[letter] = needle
    maximal = [
        letter
        for letter, needle in found.items()
        if not any(other != needle and f" {needle} " in f" {other} " for other in found.values())
    ]
    return maximal[0] if len(maximal) == 1 else None


def _whole_numbers(text: str, number: str) -> list[re.Match[str]]:
    """Occurrences of ``number`` as a number of its own: not a piece of "2:42", "2.5", "1/2", "2-3", "#2", "1st"."""
    pattern = rf"(?<![\w.,:/#+\-\u2013]){re.escape(number)}(?![\w%\u00b0]|[.,:/\-\u2013]\w)"
    return list(re.finditer(pattern, text))


def _counts(sentence: str, m: re.Match[str]) -> bool:
    """Whether the number at ``m`` counts something: "3 boats", "there are 3.", or the sentence is just "3".

    A number after a label or time word ("Segment 1", "at 2 seconds", "option 2") names a thing, not a count.
    """
    before, after = sentence[: m.start()], sentence[m.end() :]
    prev = re.search(r"([A-Za-z]+)\s*$", before)
    prev_word = prev.group(1).casefold() if prev else None
    if prev_word in _LABEL_WORDS:
        return False
    if re.match(r"\s+[A-Za-z]", after):
        return True
    closes = re.fullmatch(r"\s*[.!]?\s*", after) is not None
    return closes and (not _norm(before) or prev_word in _COPULAS)
