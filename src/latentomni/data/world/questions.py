"""Audio-visual questions over a clip's ground truth, their answers, and segment-citing reasoning trajectories.

Every question type names a moment by an *anchor* attribute in one modality ("while the high tone
played") and asks about a *target* attribute in the other ("what colour was on screen"), at the anchor's
segment or the one just before or after it. Answering therefore needs both modalities and their alignment
in time, by construction:

* The anchor's value occurs in exactly one segment, and the target modality alone cannot tell which: the
  options always include the target value of at least one *other* segment (a "confusable"), so moving the
  anchor there — a clip with the same target track — gives a different answer that is also on offer.
* The anchor modality alone says nothing about the target modality: the target segment could have shown
  or played something else, and every target vocabulary has more than one value among the options.

:func:`single_modality_answers` checks this independently, by brute force over clips that share one
track exactly; the tests run it on every generated question.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from latentomni.data.schema import TextPart, TrainingSample
from latentomni.data.world.scene import (
    ATTRIBUTES,
    COUNTS,
    NUMBER_WORDS,
    SOUNDS,
    VALUES,
    VISUALS,
    Clip,
    Modality,
    Segment,
    audio_clause,
    fused_clause,
    sentence,
    tracks_are_valid,
    visual_clause,
)

LETTERS = "ABCD"
OptionOrder = Literal["shuffled", "canonical"]
N_OPTIONS = 4

# Answer text of every attribute value: what options show and what trajectories conclude with.
_SOUND_ANSWERS = {"low tone": "the low tone", "mid tone": "the mid tone", "high tone": "the high tone",
                  "noise burst": "a noise burst", "silence": "silence"}
_MOTION_ANSWERS = {"still": "not moving", "left": "left", "right": "right", "up": "up", "down": "down"}


def answer_text(attribute: str, value: str | int) -> str:
    """How an option (and a trajectory's conclusion) words an attribute value: 3 -> 'three'."""
    if attribute == "count":
        return NUMBER_WORDS[int(value)]
    if attribute == "sound":
        return _SOUND_ANSWERS[str(value)]
    if attribute == "motion":
        return _MOTION_ANSWERS[str(value)]
    return str(value)


def answer_vocabulary(attribute: str) -> tuple[str, ...]:
    """All answer texts an attribute can take. Counts offer 'four' so that count questions have four
    options like every other type; it is never correct (no segment shows four shapes)."""
    values = (*COUNTS, 4) if attribute == "count" else VALUES[attribute]
    return tuple(answer_text(attribute, v) for v in values)


def _anchor_values(attribute: str) -> tuple[str | int, ...]:
    # "while the shape stood still" is no single moment when a group stands still too; moving is unique.
    return tuple(v for v in VALUES[attribute] if not (attribute == "motion" and v == "still"))


# How an anchor names its moment, as (the question's past tense, the trajectory's present tense): a question
# asks "while the high tone played", the trajectory's first step looks "when the high tone plays". Keyed by
# attribute, with the sounds that are no tone and the count of one worded apart. Worded so that a clause
# holds however many shapes a segment shows, so clips that differ only there read the same question.
_MOMENTS: dict[str, tuple[str, str]] = {
    "sound": ("while the {value} played", "when the {value} plays"),
    "noise burst": ("during the noise burst", "when the noise burst sounds"),
    "silence": ("while it was silent", "when it goes silent"),
    "colour": ("while a {value} shape was on screen", "when a {value} shape is on screen"),
    "shape": ("while a {value} was on screen", "when a {value} is on screen"),
    "count": ("while exactly {value} shapes were on screen", "when exactly {value} shapes are on screen"),
    "count of one": ("while exactly {value} shape was on screen", "when exactly {value} shape is on screen"),
    "motion": ("while the shape was moving {value}", "when the shape moves {value}"),
}


def _moment_clause(attribute: str, value: str | int, tense: Literal[0, 1]) -> str:
    """Entry ``tense`` of the anchor's :data:`_MOMENTS` wording, filled in with its value."""
    key = attribute
    if attribute == "sound" and str(value) in ("noise burst", "silence"):
        key = str(value)
    elif attribute == "count":
        key, value = ("count of one" if value == 1 else "count"), NUMBER_WORDS[int(value)]
    return _MOMENTS[key][tense].format(value=value)


def when_clause(attribute: str, value: str | int) -> str:
    """The anchor as a subordinate clause of the question: 'while the high tone played'."""
    return _moment_clause(attribute, value, 0)


def moment(attribute: str, value: str | int) -> str:
    """The anchor as the trajectory's first step names it: 'when the high tone plays'."""
    return _moment_clause(attribute, value, 1)


def _noun(attribute: str, value: str | int) -> str:
    """The anchor as a noun phrase, for before/after questions: 'the high tone', 'the circle'."""
    if attribute == "sound":
        return {"noise burst": "the noise burst", "silence": "the silence"}.get(str(value), f"the {value}")
    return f"the {value}"


@dataclass(frozen=True)
class QuestionType:
    """A question template: ``anchor`` names the moment, ``target`` is asked about, ``offset`` picks the
    anchor's segment (0), the one just before it (-1) or just after it (+1). Phrasings use ``{when}``
    (a :func:`when_clause`) or ``{noun}`` (the anchor as a noun phrase, for before/after)."""

    name: str
    anchor: str
    target: str
    phrasings: tuple[str, ...]
    offset: int = 0

    def __post_init__(self) -> None:
        if ATTRIBUTES[self.anchor] == ATTRIBUTES[self.target]:
            raise ValueError(f"question type {self.name}: anchor '{self.anchor}' and target '{self.target}' are "
                             f"both {ATTRIBUTES[self.target]}, so one modality alone would answer it")
        if self.offset not in (-1, 0, 1):
            raise ValueError(f"question type {self.name}: offset must be -1, 0 or 1, got {self.offset}")


_SOUND_QUESTIONS = ("Which sound was heard {when}?", "What did you hear {when}?")

QUESTION_TYPES: dict[str, QuestionType] = {
    t.name: t
    for t in (
        QuestionType("colour_at_sound", "sound", "colour",
                     ("What colour was on screen {when}?", "What colour was the shape {when}?")),
        QuestionType("shape_at_sound", "sound", "shape",
                     ("Which shape was on screen {when}?", "What shape could be seen {when}?")),
        QuestionType("count_at_sound", "sound", "count",
                     ("How many shapes were visible {when}?", "How many shapes were on screen {when}?")),
        QuestionType("motion_at_sound", "sound", "motion",
                     ("Which way was the shape moving {when}?", "In which direction did the shape move {when}?")),
        QuestionType("sound_with_colour", "colour", "sound", _SOUND_QUESTIONS),
        QuestionType("sound_with_shape", "shape", "sound", _SOUND_QUESTIONS),
        QuestionType("sound_with_count", "count", "sound", _SOUND_QUESTIONS),
        QuestionType("sound_with_motion", "motion", "sound", _SOUND_QUESTIONS),
        QuestionType("colour_before_sound", "sound", "colour",
                     ("What colour was on screen just before {noun} started?",), offset=-1),
        QuestionType("sound_after_shape", "shape", "sound",
                     ("Which sound came right after {noun} disappeared?",), offset=1),
    )
}
# Held out of training by default, as new combinations of parts training has: training never asks which
# way a shape moved (motion is only described, in perception data, or used as an anchor) and never anchors
# on a count (counts are only asked about).
DEFAULT_HELD_OUT: tuple[str, ...] = ("motion_at_sound", "sound_with_count")


@dataclass(frozen=True)
class Question:
    """One multiple-choice question about one clip. ``options`` are answer texts in shown order."""

    qtype: QuestionType
    anchor_value: str | int
    text: str
    options: tuple[str, ...]
    answer_index: int
    anchor_segment: int
    target_segment: int

    @property
    def letter(self) -> str:
        return LETTERS[self.answer_index]

    @property
    def answer(self) -> str:
        return self.options[self.answer_index]

    @property
    def lettered_options(self) -> list[str]:
        return [f"{LETTERS[i]}. {o}" for i, o in enumerate(self.options)]

    @property
    def prompt(self) -> str:
        """The user's text: the question, then one option per line."""
        return "\n".join([self.text, *self.lettered_options])


def resolve(qtype: QuestionType, anchor_value: str | int, clip: Clip) -> tuple[Segment, Segment] | None:
    """(anchor segment, target segment) of a question on ``clip``, or None where it is ill-posed there:
    the anchor is absent or not unique, or the segment before/after it does not exist."""
    hits = [s for s in clip.segments if s.attribute(qtype.anchor) == anchor_value]
    if len(hits) != 1:
        return None
    target = hits[0].index + qtype.offset
    if not 1 <= target <= len(clip.segments):
        return None
    return hits[0], clip.segments[target - 1]


def answer_on(qtype: QuestionType, anchor_value: str | int, clip: Clip) -> str | None:
    """The answer text the question has on ``clip`` (None where it is ill-posed there)."""
    found = resolve(qtype, anchor_value, clip)
    return None if found is None else answer_text(qtype.target, found[1].attribute(qtype.target))


class AnswerBalance:
    """Keeps each question type's correct answers near-uniform over the values that can be correct.

    Segments are not uniform in every attribute (a group of shapes never moves, so "not moving" is the
    motion of most segments), and a type whose answers follow the segments would reward a blind guess.
    An answer is allowed while it is fewer than ``slack`` ahead of the type's rarest answer; generation
    is sequential, so the result stays deterministic.
    """

    def __init__(self, slack: int = 2):
        self.slack = slack
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)

    def allows(self, qtype: QuestionType, answer: str) -> bool:
        counts = self.counts[qtype.name]
        floor = min(counts[answer_text(qtype.target, v)] for v in VALUES[qtype.target])
        return counts[answer] < floor + self.slack

    def add(self, question: Question) -> None:
        self.counts[question.qtype.name][question.answer] += 1


def _confusables(qtype: QuestionType, anchor: Segment, clip: Clip, correct: str) -> list[str]:
    """Target values of the segments the anchor could have been in instead (same target track)."""
    n = len(clip.segments)
    out = {
        answer_text(qtype.target, clip.segments[j + qtype.offset - 1].attribute(qtype.target))
        for j in range(1, n + 1)
        if j != anchor.index and 1 <= j + qtype.offset <= n
    }
    out.discard(correct)
    return sorted(out)


def make_question(rng: np.random.Generator, qtype: QuestionType, clip: Clip,
                  balance: AnswerBalance | None = None, option_order: OptionOrder = "shuffled") -> Question | None:
    """A random question of ``qtype`` about ``clip``, or None when the clip supports none.

    An anchor value qualifies when it is unique in the clip and some other segment would give a different
    answer; that segment's answer is always among the distractors, which are otherwise drawn at random.
    With ``balance``, anchors whose answer is already too common for this type are passed over.
    ``option_order`` "shuffled" shows the options in random order; "canonical" in the order of
    :func:`answer_vocabulary` (colours as listed, counts ascending, tones low to high), so that a letter
    follows from the answer and the set of options on offer, with no option text to copy.
    """
    candidates = []
    for value in _anchor_values(qtype.anchor):
        found = resolve(qtype, value, clip)
        if found is None:
            continue
        correct = answer_text(qtype.target, found[1].attribute(qtype.target))
        confusables = _confusables(qtype, found[0], clip, correct)
        if confusables and (balance is None or balance.allows(qtype, correct)):
            candidates.append((value, found, correct, confusables))
    if not candidates:
        return None
    value, (anchor, target), correct, confusables = candidates[int(rng.integers(len(candidates)))]
    confusable = confusables[int(rng.integers(len(confusables)))]
    rest = [v for v in answer_vocabulary(qtype.target) if v not in (correct, confusable)]
    fillers = [rest[i] for i in rng.choice(len(rest), N_OPTIONS - 2, replace=False)]
    options = [correct, confusable, *fillers]
    order = rng.permutation(N_OPTIONS)  # drawn either way, so both orders ask the same questions
    if option_order == "canonical":
        shown = tuple(v for v in answer_vocabulary(qtype.target) if v in options)
    else:
        shown = tuple(options[i] for i in order)
    phrasing = qtype.phrasings[int(rng.integers(len(qtype.phrasings)))]
    text = phrasing.format(when=when_clause(qtype.anchor, value), noun=_noun(qtype.anchor, value))
    text = text[0].upper() + text[1:]
    return Question(qtype, value, text, shown, shown.index(correct), anchor.index, target.index)


def question_from_sample(sample: TrainingSample, clip: Clip) -> Question:
    """Rebuild the :class:`Question` behind a written reasoning sample (for checks and per-type analysis)."""
    qtype = QUESTION_TYPES[sample.question_type or ""]
    anchor = sample.meta["anchor"]
    found = resolve(qtype, anchor, clip)
    if found is None or not sample.options:
        raise ValueError(f"sample {sample.id}: its anchor {anchor!r} does not name one segment of clip {clip.id}")
    options = tuple(o.split(". ", 1)[1] for o in sample.options)
    user = next(m for m in sample.messages if m.role == "user")
    text = next(p.text for p in user.content if isinstance(p, TextPart)).split("\n", 1)[0]
    return Question(qtype, anchor, text, options, LETTERS.index(sample.answer), found[0].index, found[1].index)


# -- reasoning trajectories ------------------------------------------------------------------------------
_LOCATE = ("First I find {moment}.", "What matters is {moment}, so I revisit that moment.",
           "I go back to {moment}.")
_SHIFT = {-1: ("Now I look just before it.", "Then I step back to what came right before."),
          1: ("Now I look right after it.", "Then I move on to what came right after.")}


def observation(attribute: str, seg: Segment) -> str:
    """What the target segment shows or plays, in the target modality only: 'A blue circle is on screen'."""
    clause = audio_clause(seg.sound) if attribute == "sound" else visual_clause(seg.visual)
    return clause[0].upper() + clause[1:]


def latent_part(seg: Segment) -> dict[str, Any]:
    return {"type": "latent", "segment": seg.index, "start": seg.start, "end": seg.end,
            "caption": sentence(fused_clause(seg))}


def trajectory(rng: np.random.Generator, question: Question, clip: Clip) -> list[dict[str, Any]]:
    """Assistant parts: locate the anchor and revisit its segment (a latent block), step to the target
    segment when it is a neighbour (a second block), state what is seen or heard there, box the letter."""
    qtype = question.qtype
    anchor = clip.segments[question.anchor_segment - 1]
    target = clip.segments[question.target_segment - 1]
    locate = _LOCATE[int(rng.integers(len(_LOCATE)))].format(moment=moment(qtype.anchor, question.anchor_value))
    parts: list[dict[str, Any]] = [{"type": "text", "text": locate}, latent_part(anchor)]
    if qtype.offset:
        shift = _SHIFT[qtype.offset]
        parts += [{"type": "text", "text": shift[int(rng.integers(len(shift)))]}, latent_part(target)]
    parts.append({"type": "text", "text": f"{observation(qtype.target, target)} then, so the answer is "
                                          f"{question.answer}. \\boxed{{{question.letter}}}"})
    return parts


# -- the both-modalities check ---------------------------------------------------------------------------
def alternative_clips(clip: Clip, keep: Modality) -> Iterator[Clip]:
    """Valid world clips with the same timeline whose ``keep`` track is identical to ``clip``'s.

    Audio tracks are few (5 sounds per segment), so varying audio is exhaustive. Visual tracks are not, so
    varying video covers: every reordering of the segments' visuals, every single-segment substitution,
    and every move of one segment's visual to another segment with any visual left behind.
    """
    n = len(clip.segments)
    if keep == "video":
        for sounds in itertools.product(SOUNDS, repeat=n):
            if tracks_are_valid(clip.visuals, sounds):
                yield clip.with_tracks(sounds=sounds)
        return
    base = clip.visuals

    def candidates() -> Iterator[tuple]:
        yield from itertools.permutations(base)
        for i, w in itertools.product(range(n), VISUALS):
            yield (*base[:i], w, *base[i + 1 :])
        for i, j in itertools.permutations(range(n), 2):
            for w in VISUALS:
                moved = list(base)
                moved[j], moved[i] = base[i], w
                yield tuple(moved)

    for visuals in candidates():
        if tracks_are_valid(visuals, clip.sounds):
            yield clip.with_tracks(visuals=visuals)


def single_modality_answers(question: Question, clip: Clip, evidence: Modality, limit: int | None = None) -> set[str]:
    """Answers, among the question's options, over clips that ``evidence`` alone cannot tell from ``clip``.

    More than one means a solver who only hears (``"audio"``) or only sees (``"video"``) cannot pick the
    correct option. ``limit`` stops the search once that many distinct answers are found.
    """
    found: set[str] = set()
    for alt in alternative_clips(clip, keep=evidence):
        ans = answer_on(question.qtype, question.anchor_value, alt)
        if ans is not None and ans in question.options:
            found.add(ans)
            if limit is not None and len(found) >= limit:
                break
    return found
