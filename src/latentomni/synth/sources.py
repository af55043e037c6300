"""Time-aligned audio-visual caption records, and adapters for the two source datasets (App. A.1).

The pipeline's own record (``native`` format, one JSON object per line)::

    {"id": "clip001", "media": "videos/clip001.mp4", "duration": 5.0,
     "caption": "A man taps a glass twice; each tap rings out ...",
     "events": [{"start": 0.0, "end": 1.2, "modality": "visual", "text": "A man lifts a spoon."},
                {"start": 1.0, "end": 1.5, "modality": "audio", "text": "A glass rings."}]}

``media`` resolves against the input's ``media_root`` (default: the JSONL file's folder). ``duration``
may be omitted; it is then probed from the media file. ``events`` may be omitted when the caption's
lines carry time spans (the form benchmark caption files use, ``0-10s: ...``): each span then becomes
an ``audiovisual`` event.

Adapters. The public cards of ASID-1M and AVoCaDO do not document a per-event timestamp field, so the
adapters rest on these stated assumptions (change them here if the release differs):

* ``asid``: an ms-swift style record (the format ASID's training scripts consume):
  ``{"videos": ["x.mp4"] | "video": "x.mp4", "messages"|"conversations": [..., {"role"|"from":
  "assistant"|"gpt", "content"|"value": CAPTION}], "id"?: ..., "duration"?: ...}``. The caption is
  attribute-structured: sections headed ``Name:`` (scene, actions, speech, audio, camera, ...) whose
  lines may start with a time span. Lines in speech/audio/sound/music/dialogue sections are audio
  events, all others visual.
* ``avocado``: ``{"id"|"video_id": ..., "video"|"video_path": "x.mp4", "caption": TEXT, "duration"?}``
  where TEXT is a temporally ordered paragraph whose pieces start with time spans. AVoCaDO captions
  interleave both modalities in one sentence, so its events are ``audiovisual``.

Time spans are recognised as ``[00:01 - 00:04]``, ``(0:01-0:04)``, ``<1.5s-4.0s>``, ``[1.5 - 4.0]``,
``from 1.5s to 4.0s``, and as an unbracketed prefix followed by a colon (``0-10s:``, ``10–20 s:``,
``00:10-00:20:``) at the start of a line or after a sentence; bare ``3-4`` without the colon stays text
("3-4 people enter").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from latentomni.data.schema import JsonLine, iter_json_lines

__all__ = ["Clip", "Event", "RecordError", "SourceRecord", "iter_source", "parse_time_spans"]

EVENT_TOLERANCE_S = 0.5  # events may overrun the duration by this much (caption timestamps are coarse)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: float = Field(ge=0)
    end: float
    modality: Literal["audio", "visual", "audiovisual"]
    text: str = Field(min_length=1)

    @model_validator(mode="after")
    def _order(self) -> Event:
        if not self.end > self.start:
            raise ValueError(f"event end ({self.end}) must be > start ({self.start})")
        return self


class Clip(BaseModel):
    """One validated source record: the unit of the QA stage."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    media: str
    duration: float = Field(gt=0)
    caption: str = Field(min_length=1)
    events: list[Event] = Field(min_length=1)
    source: str = "native"
    where: str = ""

    @model_validator(mode="after")
    def _events_inside(self) -> Clip:
        for ev in self.events:
            if ev.start >= self.duration or ev.end > self.duration + EVENT_TOLERANCE_S:
                raise ValueError(
                    f"event [{ev.start}, {ev.end}] lies outside the media duration ({self.duration} s)"
                )
        self.events = sorted(self.events, key=lambda e: (e.start, e.end))
        return self

    def events_in(self, start: float, end: float) -> list[Event]:
        return [e for e in self.events if e.start < end and e.end > start]


class RecordError(ValueError):
    """A source record that cannot be used; ``reason`` is its drop-reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# A raw line of an input file, before adaptation: where it is, and its decoded JSON (or error).
SourceRecord = JsonLine


def iter_source(path: Path) -> Iterator[SourceRecord]:
    """Yield every non-blank line of a JSONL file with its ``file:line``; bad JSON is not fatal: it becomes
    an ``invalid_json`` drop of the ingest stage."""
    return iter_json_lines(path)


# -- time spans -------------------------------------------------------------------------------------
_T = r"(\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?|\d+(?:\.\d+)?)\s*s?"
_U = r"(\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?|\d+(?:\.\d+)?)\s*(?:s|secs?|seconds?)?"
_SPAN = re.compile(
    rf"[\[(<]\s*{_T}\s*(?:-|–|—|to)\s*{_T}\s*[\])>]|\bfrom\s+{_T}\s+to\s+{_T}\b[,:]?"
    rf"|(?:^|(?<=[.!?;])[ \t]+)[ \t]*{_U}[ \t]*(?:-|–|—|to)[ \t]*{_U}[ \t]*:(?!\d)",
    re.IGNORECASE | re.MULTILINE,
)


def _seconds(token: str) -> float:
    if ":" not in token:
        return float(token)
    total = 0.0
    for part in token.split(":"):
        total = total * 60 + float(part)
    return total


def parse_time_spans(text: str) -> list[tuple[float, float, str]]:
    """Split text at time-span markers: each marker owns the text up to the next marker."""
    marks = list(_SPAN.finditer(text))
    spans = []
    for i, m in enumerate(marks):
        groups = [g for g in m.groups() if g is not None]
        start, end = _seconds(groups[0]), _seconds(groups[1])
        stop = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = " ".join(text[m.end() : stop].split()).strip(" :-–—,;")
        if body:
            spans.append((start, end, body))
    return spans


# -- adapters ---------------------------------------------------------------------------------------
_AUDIO_SECTIONS = ("speech", "audio", "sound", "music", "dialogue", "dialog", "voice", "acoustic")
_SECTION = re.compile(r"^\s*(?:[#*\-]+\s*)?([A-Za-z][A-Za-z /&_-]{1,40}?)\s*\**\s*:\s*(.*)$")


def _first(obj: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if obj.get(key) not in (None, "", []):
            return obj[key]
    return None


def _asid(obj: dict[str, Any]) -> dict[str, Any]:
    media = _first(obj, "video", "videos", "media")
    if isinstance(media, list):
        media = media[0] if media else None
    turns = _first(obj, "messages", "conversations") or []
    caption = None
    for turn in turns:
        if isinstance(turn, dict) and (turn.get("role") or turn.get("from")) in ("assistant", "gpt"):
            caption = turn.get("content") or turn.get("value")
    if not isinstance(caption, str):
        raise RecordError("invalid_record", "no assistant caption in messages/conversations")
    events: list[dict[str, Any]] = []
    section = ""
    for line in caption.splitlines():
        head = _SECTION.match(line)
        if head and not _SPAN.match(line.strip()):
            section, line = head.group(1).lower(), head.group(2)
        modality = "audio" if any(w in section for w in _AUDIO_SECTIONS) else "visual"
        for start, end, body in parse_time_spans(line):
            events.append({"start": start, "end": end, "modality": modality, "text": body})
    return {"id": obj.get("id"), "media": media, "duration": obj.get("duration"), "caption": caption.strip(),
            "events": events}


def _avocado(obj: dict[str, Any]) -> dict[str, Any]:
    caption = obj.get("caption")
    if not isinstance(caption, str):
        raise RecordError("invalid_record", "field 'caption' must be a string")
    events = [{"start": s, "end": e, "modality": "audiovisual", "text": t} for s, e, t in parse_time_spans(caption)]
    return {"id": _first(obj, "id", "video_id"), "media": _first(obj, "video", "video_path", "media"),
            "duration": obj.get("duration"), "caption": caption.strip(), "events": events}


def _native(obj: dict[str, Any]) -> dict[str, Any]:
    fields = dict(obj)
    if "events" not in fields and isinstance(fields.get("caption"), str):
        fields["events"] = [{"start": s, "end": e, "modality": "audiovisual", "text": t}
                            for s, e, t in parse_time_spans(fields["caption"])]
    return fields


ADAPTERS = {"native": _native, "asid": _asid, "avocado": _avocado}


def probe_duration(path: Path) -> float:
    """Media duration in seconds from the container (PyAV), used when a record omits it."""
    import av

    with av.open(str(path)) as container:
        if container.duration is not None:
            return container.duration / 1_000_000
        streams = [s for s in container.streams if s.duration is not None and s.time_base is not None]
        if streams:
            return max(float(s.duration * s.time_base) for s in streams)
    raise RecordError("corrupt_media", f"cannot determine the duration of {path}")


def adapt(record: SourceRecord, fmt: str, media_root: Path) -> Clip:
    """Turn one raw record into a validated :class:`Clip`, or raise :class:`RecordError`."""
    if record.error is not None:
        raise RecordError("invalid_json", record.error)
    if not isinstance(record.obj, dict):
        raise RecordError("invalid_record", f"expected a JSON object, got {type(record.obj).__name__}")
    fields = ADAPTERS[fmt](record.obj)
    media = fields.get("media")
    if not isinstance(media, str) or not media:
        raise RecordError("invalid_record", "no media path")
    path = Path(media) if Path(media).is_absolute() else media_root / media
    if not path.is_file():
        raise RecordError("media_missing", f"media file not found: {path}")
    if not fields.get("events"):
        raise RecordError("no_timed_events", "record has no timestamped audio/visual events")
    if fields.get("duration") is None:
        try:
            fields["duration"] = probe_duration(path)
        except RecordError:
            raise
        except Exception as e:  # PyAV raises its own error family for unreadable files
            raise RecordError("corrupt_media", f"cannot open {path}: {e}") from None
    if not fields.get("id"):
        fields["id"] = f"{path.stem}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    fields.update(id=str(fields["id"]), media=str(path.resolve()), source=fmt, where=record.where)
    try:
        return Clip.model_validate(fields)
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'record'}: {err['msg']}" for err in e.errors()[:3])
        raise RecordError("invalid_record", msgs) from None
