"""Typed LLM replies (issue #7): one pydantic model per kind of request, and a tolerant parser.

Each model is both the contract sent to the server (as a strict JSON schema in ``response_format``,
so vLLM's structured outputs constrain decoding) and the validator applied to what comes back. The
schema is never trusted alone: an endpoint may run with ``response_format: none``, a constrained
decoder may still emit raw control characters inside strings, and a model may wrap its JSON in
Markdown fences or prose. :func:`parse_reply` handles those and raises :class:`ReplyInvalid` with a
reason the caller turns into a repair turn or, finally, a recorded drop.

Enumerations follow the paper: the 10 question categories and 3 modality-dependency labels of the
judge prompt (Fig. 7), option letters A-D of the multiple-choice format (Fig. 6).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

__all__ = [
    "AuditReply",
    "CaptionReply",
    "Category",
    "FusionReply",
    "GroundingReply",
    "MCQReply",
    "Modality",
    "OpenQAReply",
    "OptionLetter",
    "QualityScores",
    "ReasoningType",
    "RefineReply",
    "Reply",
    "ReplyInvalid",
    "ScoreReply",
    "TrajectoryReply",
    "extract_json",
    "parse_reply",
    "strict_json_schema",
    "unwrap_plain_text",
]


class ReplyInvalid(ValueError):
    """A reply that does not parse or validate. ``reason`` is the drop-reason code if retries run out."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Category(StrEnum):
    """The 10 AVQA categories of the judge prompt (Fig. 7), in the paper's order.

    (Fig. 7 numbers the second category "(3)" as well; the list itself has ten distinct entries.)
    """

    AV_JOINT_PERCEPTION = "Audio-Visual Joint Perception"
    ACTION_BEHAVIOR = "Action & Behavior Recognition"
    SPATIAL_LAYOUT = "Spatial Layout Understanding"
    TEMPORAL_SEQUENCE = "Temporal Sequence Understanding"
    ATTRIBUTE_COMPARISON = "Attribute Comparison & Change"
    COUNTING = "Counting & Quantification"
    EMOTION_ATMOSPHERE = "Emotion & Atmosphere Perception"
    SEMANTIC_SUMMARY = "Semantic Content Summarization"
    LOGICAL_RELATION = "Logical Relation Reasoning"
    INTENTION_OUTCOME = "Intention & Outcome Prediction"


class Modality(StrEnum):
    """Primary modality dependency of a question (Fig. 7)."""

    AV_STRONG = "AV-Strong"
    VIDEO_STRONG = "Video-Strong"
    AUDIO_STRONG = "Audio-Strong"


class OptionLetter(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


class ReasoningType(StrEnum):
    """The reasoning a synthesized question targets (App. A.2 names these as examples)."""

    CAUSAL = "causal"
    SPATIAL = "spatial"
    TEMPORAL = "temporal"
    SOUND_ACTION_ATTRIBUTION = "sound_action_attribution"
    OBJECT_INTERACTION = "object_interaction"
    COUNTING = "counting"
    COMPARISON = "comparison"
    INTENTION = "intention"


class Reply(BaseModel):
    """Base of every reply model. Unknown keys are ignored when validating (models like to add an
    ``id``), while the schema sent to the server forbids them.

    ``plain_text_field`` names the one string field a reply may arrive as *bare text* (no JSON at all)
    when the endpoint cannot constrain output, e.g. a captioner: the text then fills that field and
    still goes through the field's validators.
    """

    model_config = ConfigDict(extra="ignore")
    plain_text_field: ClassVar[str | None] = None


Score = Annotated[int, Field(ge=1, le=5)]
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

# clock times (0:03), seconds with a unit word (3 seconds, 2.5 sec) or decimals (2.5s); not decades ("the 1990s")
_TIMESTAMP = re.compile(r"\b\d{1,2}:\d{2}\b|\b\d+(?:\.\d+)?\s?(?:secs?|seconds?)\b|\b\d+\.\d+\s?s\b", re.IGNORECASE)
_TAG = re.compile(r"<[^<>\n]{1,40}>")
_OBJECT_ID = re.compile(r"\b[a-z]+_\d+\b|\b(?:obj|id|bbox)\s?#?\d+\b", re.IGNORECASE)


def _no_markup(text: str, what: str) -> str:
    """App. A.2 'format and style': no timestamps, object IDs, box labels or raw tags in QA text."""
    text = text.strip()
    for pattern, name in ((_TIMESTAMP, "a timestamp"), (_TAG, "a markup tag"), (_OBJECT_ID, "an object ID")):
        m = pattern.search(text)
        if m:
            raise ValueError(f"{what} contains {name} ({m.group(0)!r}); write it in plain words")
    return text


def _sentences(text: str) -> list[str]:
    from latentomni.synth.text import split_sentences

    return split_sentences(text)


class _QuestionReply(Reply):
    """What both QA formats start with: a question in plain words (App. A.2). Only ``question`` is declared
    here, so each format's fields keep their order in the schema sent to the server."""

    question: NonEmpty

    @field_validator("question")
    @classmethod
    def _question(cls, v: str) -> str:
        return _no_markup(v, "question")


class OpenQAReply(_QuestionReply):
    """Fig. 5: one open-ended question needing both modalities, with a concise answer."""

    answer: NonEmpty
    reasoning_type: ReasoningType

    @field_validator("answer")
    @classmethod
    def _answer(cls, v: str) -> str:
        v = _no_markup(v, "answer")
        if len(v.split()) > 10:
            raise ValueError(f"answer must be at most 10 words, got {len(v.split())}")
        return v


_LETTER_PREFIX = re.compile(r"^\s*\(?([A-D])[.):]\s+")


class MCQOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    A: NonEmpty
    B: NonEmpty
    C: NonEmpty
    D: NonEmpty


class MCQReply(_QuestionReply):
    """Fig. 6: one multiple-choice question with four options of which exactly one is correct."""

    options: MCQOptions
    answer: OptionLetter
    reasoning_type: ReasoningType

    @model_validator(mode="after")
    def _options(self) -> MCQReply:
        texts = {}
        for letter in "ABCD":
            raw = getattr(self.options, letter)
            m = _LETTER_PREFIX.match(raw)
            if m and m.group(1) != letter:
                raise ValueError(f"option {letter} is labelled {m.group(1)!r}")
            text = _no_markup(raw[m.end():] if m else raw, f"option {letter}")
            setattr(self.options, letter, text)
            texts[letter] = " ".join(text.lower().split())
        if len(set(texts.values())) != 4:
            raise ValueError("the four options must be distinct")
        return self

    def option_lines(self) -> list[str]:
        return [f"{letter}. {getattr(self.options, letter)}" for letter in "ABCD"]


class QualityScores(BaseModel):
    model_config = ConfigDict(extra="forbid")
    context_utilization: Score
    question_difficulty: Score
    deductive_requirement: Score


class ScoreReply(Reply):
    """Fig. 7: three 1-5 quality scores, one of 10 categories, the primary modality dependency."""

    scores: QualityScores
    category: Category
    modality_dependency: Modality
    rationale: str

    @property
    def total(self) -> int:
        s = self.scores
        return s.context_utilization + s.question_difficulty + s.deductive_requirement


class CaptionReply(Reply):
    """Figs. 8-9: a segment caption of at most five sentences."""

    plain_text_field: ClassVar[str | None] = "caption"
    max_sentences: ClassVar[int] = 5
    caption: NonEmpty

    @field_validator("caption")
    @classmethod
    def _short(cls, v: str) -> str:
        n = len(_sentences(v))
        if n > cls.max_sentences:
            raise ValueError(f"caption must have at most {cls.max_sentences} sentences, got {n}")
        return v.strip()


class FusionReply(Reply):
    """Fig. 10: one narrative holding every sentence of both captions (checked by the caller)."""

    plain_text_field: ClassVar[str | None] = "narrative"
    narrative: NonEmpty


class RefineReply(Reply):
    """Fig. 11: the segment caption with shot fragmentation repaired."""

    plain_text_field: ClassVar[str | None] = "caption"
    caption: NonEmpty


class GroundingReply(Reply):
    """Hallucination filter: the caption's sentences that the source caption does not support."""

    unsupported_sentences: list[str]
    verdict: Literal["grounded", "partially_grounded", "hallucinated"]


class TrajectoryReply(Reply):
    """Fig. 12: reasoning text with ``[Segment n]`` citations ending in ``\\boxed{...}``."""

    plain_text_field: ClassVar[str | None] = "trajectory"
    trajectory: NonEmpty


class AuditReply(Reply):
    """Second-model audit of a trajectory: is it consistent, and the corrected text."""

    consistent: bool
    trajectory: str
    issues: list[str]


# -- JSON schema for response_format ----------------------------------------------------------------
@functools.cache
def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the 'strict' shape structured-output servers expect: every object
    closed (``additionalProperties: false``) and every property required.

    String lengths (``minLength``/``maxLength``) are left out: xgrammar 0.2.8, vLLM's default backend,
    compiles a string with either bound into a rule that admits no escape sequence, so a constrained
    reply could never hold ``\\boxed{...}``, a newline or a quote (found against a real vLLM server).
    :func:`parse_reply` still enforces the lengths.

    Cached per model (generating it costs ~2 ms, once per request otherwise); treat it as read-only."""
    schema = copy.deepcopy(model.model_json_schema())

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            if node.get("type") == "string":
                node.pop("minLength", None)
                node.pop("maxLength", None)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


R = TypeVar("R", bound=Reply)


@functools.cache
def schema_digest(model: type[BaseModel]) -> str:
    """SHA-256 of :func:`strict_json_schema` (sorted keys): how a schema enters the response-cache key."""
    return hashlib.sha256(json.dumps(strict_json_schema(model), sort_keys=True).encode()).hexdigest()


# -- parsing ----------------------------------------------------------------------------------------
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_BAD_ESCAPE = re.compile(r'\\(?!["\\/bfnrtu])')
_DECODER = json.JSONDecoder(strict=False)


def _loads(text: str) -> Any:
    """``json.loads(strict=False)`` that also survives LaTeX-style backslashes (``\\s``, ``\\(``)."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as e:
        if "escape" not in e.msg:
            raise
        return _DECODER.decode(_BAD_ESCAPE.sub(r"\\\\", text))


def _first_object(text: str) -> Any:
    """The first JSON object embedded in ``text`` (after leading prose, before trailing prose)."""
    start = text.find("{")
    while start != -1:
        try:
            obj, _end = _DECODER.raw_decode(text, start)
            return obj
        except json.JSONDecodeError as e:
            if "escape" in e.msg:
                try:
                    obj, _end = _DECODER.raw_decode(_BAD_ESCAPE.sub(r"\\\\", text[start:]))
                    return obj
                except json.JSONDecodeError:
                    pass
        start = text.find("{", start + 1)
    raise ValueError("no JSON object found")


def extract_json(text: str) -> Any:
    """Decode the JSON object of a model reply: drops ``<think>`` blocks, unwraps Markdown fences,
    skips leading prose, and tolerates raw control characters inside strings."""
    text = _THINK.sub("", text).strip()
    for candidate in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        candidate = candidate.strip()
        try:
            return _loads(candidate)
        except (json.JSONDecodeError, ValueError):
            pass
        try:
            return _first_object(candidate)
        except ValueError:
            continue
    raise ValueError("no JSON object found in the reply")


# -- bare-text replies ------------------------------------------------------------------------------
# What a chat model or a proxy wraps around plain text, stripped only where it certainly is wrapping:
# an opening courtesy word with its punctuation, an announcement that names what follows ("Here is the
# refined caption:"), a label ("Caption:"), one Markdown fence, a closing offer of more help.
_WRAPPED_NOUN = (r"(?:caption|description|narrative|result|summary|answer|text|reasoning|trajectory|response|"
                 r"output|version)s?")
_COURTESY = re.compile(r"^(?:sure|certainly|of course|absolutely)\s*[!,.]+\s*", re.IGNORECASE)
_ANNOUNCEMENT = re.compile(
    r"^(?:here(?:'s|\s+is|\s+are)|below\s+is|this\s+is)\s+(?:the|a|an|your|my)\s+(?:[\w-]+\s+){0,4}?"
    + _WRAPPED_NOUN + r"\b[^\n:.!…]{0,60}(?::|\.{3}|…|[.!]|(?=\n)|$)[ \t]*(?:\n\s*)?", re.IGNORECASE)
_LABEL = re.compile(r"^(?:#{1,6}[ \t]+)?(?:\*\*)?(?:(?:video|audio|visual|segment|fused|final|refined)[ \t]+)?"
                    r"(?:caption|description|narrative|trajectory)(?:\*\*)?[ \t]*:(?:\*\*)?\s*", re.IGNORECASE)
_OUTRO = re.compile(r"(?:^|(?<=[.!?])[ \t]+|\n\s*)"
                    r"(?:let me know|i hope (?:this|it)|hope (?:this|it) helps|feel free to|is there anything else)"
                    r"[^\n]*\s*$", re.IGNORECASE)
_FENCED = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)
# Signs that what is left is conversation, not the text asked for: these are re-asked, then dropped.
_CHATTER = re.compile(
    r"```|^\s*(?:i'm sorry|i am sorry|sorry[,!]|i cannot|i can't|i can not|i'm unable|i am unable|as an ai\b|"
    r"unfortunately,? i\b|sure[!,.]|certainly[!,.]|here(?:'s|\s+is|\s+are)\s+(?:the|your)\s+(?:[\w-]+\s+){0,4}?"
    + _WRAPPED_NOUN + r"\b|#{1,6}\s)|\b(?:let me know|hope (?:this|it) helps|feel free to)\b",
    re.IGNORECASE | re.MULTILINE)


def _strip_prose(text: str, *, payload: bool = True) -> str:
    """``text`` without leading and trailing wrapping prose. With ``payload`` (the text is meant to hold the
    reply) an announcement or a label with nothing after it is kept: it is then the reply itself."""
    text = text.strip()
    while True:
        before = text
        text = _COURTESY.sub("", text, count=1)
        for pattern in (_ANNOUNCEMENT, _LABEL):
            m = pattern.match(text)
            if m and (text[m.end():].strip() or not payload):
                text = text[m.end():]
        text = _OUTRO.sub("", text).strip()
        if text == before:
            return text


def unwrap_plain_text(text: str) -> str:
    """The text a bare-text reply carries, without the wrapping a model or a proxy put around it.

    One Markdown fence is unwrapped when everything outside it is itself wrapping (a courtesy line,
    an announcement, a closing offer); leading and trailing prose of those kinds is stripped. What then
    still reads as conversation (a refusal, a second fence, "Sure", a heading, an offer of more help)
    raises :class:`ReplyInvalid` with reason ``chatter_reply``, so the client re-asks and finally drops
    the item instead of letting ``Sure! Here is the result:`` into a training caption."""
    text = _THINK.sub("", text).strip()
    fences = list(_FENCED.finditer(text))
    if len(fences) == 1:
        fence = fences[0]
        outside = _strip_prose(text[:fence.start()] + "\n" + text[fence.end():], payload=False)
        if not outside:
            text = fence.group(1)
    text = _strip_prose(text)
    m = _CHATTER.search(text)
    if m:
        start = max(0, m.start() - 20)
        raise ReplyInvalid("chatter_reply", f"the reply is conversation, not only the text asked for "
                                            f"(at {text[start:m.end() + 30]!r}); send the text alone")
    if not text:
        raise ReplyInvalid("invalid_reply", "empty reply once its wrapping was removed")
    return text


def _restore_backslashes(obj: Any) -> Any:
    """``"\\boxed{B}"`` written with one backslash decodes as backspace + 'oxed'; put it back."""
    if isinstance(obj, str):
        return obj.replace("\x08oxed{", "\\boxed{")
    if isinstance(obj, dict):
        return {k: _restore_backslashes(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_restore_backslashes(v) for v in obj]
    return obj


def _short(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:4]:
        loc = ".".join(str(x) for x in err["loc"]) or "<reply>"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_reply(text: str | None, model: type[R], *, plain_text: bool = True) -> R:
    """Parse and validate one reply; raises :class:`ReplyInvalid` saying what is wrong.

    ``plain_text=False`` turns off the bare-text reading of :attr:`Reply.plain_text_field`: when the
    server was told to answer in JSON, or cut the reply off at max_tokens, text without a JSON object is
    a broken reply, not a caption (seen with vLLM: a truncated ``{"caption": "...`` would otherwise
    become a caption that starts with ``{"caption"``)."""
    if text is None or not text.strip():
        raise ReplyInvalid("invalid_reply", "empty reply")
    try:
        obj = extract_json(text)
    except ValueError:
        if model.plain_text_field is None or not plain_text:
            raise ReplyInvalid("invalid_reply", "reply holds no JSON object") from None
        obj = {model.plain_text_field: unwrap_plain_text(text)}
    if not isinstance(obj, dict):
        if model.plain_text_field is not None and plain_text and isinstance(obj, str):
            obj = {model.plain_text_field: unwrap_plain_text(obj)}
        else:
            raise ReplyInvalid("invalid_reply", f"expected a JSON object, got {type(obj).__name__}")
    try:
        return model.model_validate(_restore_backslashes(obj))
    except ValidationError as e:
        raise ReplyInvalid("invalid_reply", f"{model.__name__}: {_short(e)}") from None
