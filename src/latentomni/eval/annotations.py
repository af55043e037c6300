"""Reading benchmark annotation files as they really come: the shared, forgiving half of every adapter.

Benchmarks ship JSON lists, JSON objects keyed by video, JSONL, or a list under some key; options written
"A. x", "A.x", "A x", "(A) x", as a {"A": "x"} mapping or with no letters at all; gold answers as "A",
"A.", "(A)", "a" or the option's text. Each adapter says *which fields* it reads; this module decides
*how* to read them, so a quirk fixed here is fixed for every benchmark. Whatever cannot be read raises
``AnnotationError`` naming the file, the record and the field, never a bare ``KeyError``.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from latentomni.data.paths import MediaPathError, contain
from latentomni.data.questions import LABEL_SEP

LIST_KEYS = ("data", "questions", "annotations", "items", "records", "samples", "test")


class AnnotationError(ValueError):
    """An annotation file or record the adapter cannot read; the message says where and what to do."""


class Record:
    """One annotation record with its location, for case-insensitive field access and located errors."""

    def __init__(self, data: Mapping[str, Any], path: Path, where: str, key: str | None = None):
        if not isinstance(data, Mapping):
            raise AnnotationError(f"{path}: {where}: expected a JSON object, got {type(data).__name__}")
        self.data = data
        self.path = path
        self.where = where  # "record 3" or "record 3, questions[1]"
        self.key = key  # the mapping key the record was stored under, if any
        self._folded = {str(k).casefold(): k for k in data}

    def _lookup(self, names: Iterable[str]) -> Any:
        for name in names:
            k = self._folded.get(name.casefold())
            if k is not None and self.data[k] is not None and self.data[k] != "":
                return self.data[k]
        return None

    def get(self, *names: str, default: Any = None) -> Any:
        """The first of ``names`` present (any key casing) and non-empty, else ``default``."""
        value = self._lookup(names)
        return default if value is None else value

    def require(self, *names: str) -> Any:
        """Like ``get`` but a missing field is an error naming the file, record and accepted names."""
        value = self._lookup(names)
        if value is None:
            tried = ", ".join(repr(n) for n in names)
            raise AnnotationError(
                f"{self.path}: {self.where}: missing field {tried}; "
                "check that --benchmark matches the file and that the record is complete"
            )
        return value

    def text(self, *names: str, default: str = "") -> str:
        """A field as a stripped string (numbers are formatted, lists joined with ``LABEL_SEP``)."""
        return as_label(self.get(*names, default=default))

    def require_text(self, *names: str) -> str:
        """``require`` as a stripped string."""
        return as_label(self.require(*names))

    def child(self, data: Any, where: str) -> Record:
        """A record nested in this one (a question inside a video entry)."""
        return Record(data, self.path, f"{self.where}, {where}")

    def error(self, message: str) -> AnnotationError:
        return AnnotationError(f"{self.path}: {self.where}: {message}")


def parse_listish(value: Any) -> Any:
    """A list that an export flattened to its repr ("['Speech', 'Event']") back as a list; else unchanged."""
    if isinstance(value, str) and value.strip().startswith("[") and value.strip().endswith("]"):
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            return value
        if isinstance(parsed, list):
            return parsed
    return value


def as_label(value: Any) -> str:
    """A meta value as a string; a list of labels becomes one multi-label value."""
    value = parse_listish(value)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return LABEL_SEP.join(as_label(v) for v in value if as_label(v))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split())


def load_records(path: str | Path) -> list[Record]:
    """Every top-level record of ``path``: a JSON list, a JSON object of records (keyed by video or entry
    id, the key kept as ``Record.key``), a list under one of ``LIST_KEYS``, JSONL, Parquet, or a TSV table
    with a header row (VLMEvalKit's ``<Dataset>.tsv``, whose list cells hold a Python list's repr)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    if path.suffix.lower() == ".parquet":
        return _records_from(_read_parquet(path), path)
    raw = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".tsv":
        return _records_from(_read_tsv(raw, path), path)
    if path.suffix.lower() == ".jsonl":
        return _records_from(_read_jsonl(raw, path), path)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # a .json file that is really JSONL
            return _records_from(_read_jsonl(raw, path), path)
        raise AnnotationError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from e
    return _records_from(data, path)


def _read_jsonl(raw: str, path: Path) -> list[Any]:
    rows = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise AnnotationError(f"{path}: line {lineno}: not valid JSON ({e.msg})") from e
    return rows


def _read_tsv(raw: str, path: Path) -> list[dict[str, str]]:
    """Rows of a tab-separated table as written by pandas ``to_csv(sep="\\t")``: a header row, cells quoted
    only when they hold a tab, quote or line break; an empty cell is a missing value."""
    reader = csv.DictReader(io.StringIO(raw, newline=""), delimiter="\t")
    if not reader.fieldnames or all(not str(f).strip() for f in reader.fieldnames):
        raise AnnotationError(f"{path}: line 1: expected a header row of column names")
    rows = []
    for row in reader:
        if None in row or any(v is None for v in row.values()):
            n = len(row.get(None) or []) + sum(v is not None for k, v in row.items() if k is not None)
            raise AnnotationError(
                f"{path}: line {reader.line_num}: {n} cells for {len(reader.fieldnames)} columns; "
                "is the file tab-separated with one record per row?"
            )
        rows.append({k: v for k, v in row.items() if k is not None})
    return rows


def _read_parquet(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise AnnotationError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or export the table to JSON/JSONL first"
        ) from e
    return pq.read_table(path).to_pylist()


def _records_from(data: Any, path: Path) -> list[Record]:
    if isinstance(data, dict):
        for key in LIST_KEYS:
            folded = {str(k).casefold(): k for k in data}
            if key in folded and isinstance(data[folded[key]], list):
                data = data[folded[key]]
                break
        else:
            if data and all(isinstance(v, dict) for v in data.values()):
                return [Record(v, path, f"record {i} ({k!r})", key=str(k)) for i, (k, v) in enumerate(data.items())]
            raise AnnotationError(
                f"{path}: expected a list of records, an object of records or a list under one of "
                f"{', '.join(LIST_KEYS)}; got an object with keys {sorted(data)[:8]}"
            )
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a list of records, got {type(data).__name__}")
    return [Record(r, path, f"record {i}") for i, r in enumerate(data)]


# -- options and answers ------------------------------------------------------------------------------

_LABELLED = [
    re.compile(r"^\s*[(\[]([A-Za-z])[)\]]\s*[.:]?\s*(.*)$", re.DOTALL),  # (A) x, [A] x
    re.compile(r"^\s*([A-Za-z])\s*[.:)\uff0e\uff1a\u3001]\s*(.*)$", re.DOTALL),  # A. x, A.x, A: x, A) x
    re.compile(r"^\s*([A-Za-z])\s+(\S.*)$", re.DOTALL),  # A x
]


def _split_label(option: str) -> tuple[str, str] | None:
    for pattern in _LABELLED:
        m = pattern.match(option)
        if m:
            return m.group(1).upper(), m.group(2).strip()
    return None


def normalise_options(raw: Any, rec: Record, field: str = "options") -> list[str]:
    """Options as ``["A. text", "B. text", ...]``.

    Letters already in the strings are kept only when *every* option carries one and they run A, B, C...
    in order; otherwise the strings are taken as plain text and lettered in order. That rule is what keeps
    "A man walks" / "A dog barks" from being read as four options all labelled A.
    """
    raw = parse_listish(raw)
    if isinstance(raw, str):
        parts = [p for p in raw.splitlines() if p.strip()]
        raw = parts if len(parts) > 1 else _split_inline_options(raw)
    if isinstance(raw, Mapping):
        items = sorted(((str(k).strip().strip("().").upper(), as_label(v)) for k, v in raw.items()))
        letters = [k for k, _ in items]
        if letters != [chr(ord("A") + i) for i in range(len(items))]:
            raise rec.error(f"field {field!r}: option keys {letters} are not A, B, C, ... in order")
        return [f"{k}. {v}" for k, v in items]
    if not isinstance(raw, (list, tuple)) or len(raw) < 2:
        raise rec.error(f"field {field!r}: expected at least two options, got {raw!r}")
    texts = [as_label(o) for o in raw]
    if any(not t for t in texts):
        raise rec.error(f"field {field!r}: empty option in {raw!r}")
    split = [_split_label(t) for t in texts]
    expected = [chr(ord("A") + i) for i in range(len(texts))]
    if all(s is not None and s[1] for s in split) and [s[0] for s in split] == expected:
        texts = [s[1] for s in split]
    elif _repeated_source_letters(texts):
        texts = [_split_label(t)[1] for t in texts]  # type: ignore[index]
    return [f"{letter}. {text}" for letter, text in zip(expected, texts, strict=True)]


def _repeated_source_letters(texts: list[str]) -> bool:
    """Options that all carry an explicit label ("A." "B)" "(A)" "A:", not a bare "A man") whose letters
    repeat, as some OmniVideoBench records letter them A, B, A, B. Such letters cannot be what an answer
    refers to, so they are dropped and the options lettered in order; otherwise the result would read
    "C. A. an angry tone". Unique letters out of order ("B. blue", "A. red") are kept as text instead: an
    answer may refer to them, and the record should be checked by a person."""
    labels = [_split_label(t) if any(p.match(t) for p in _LABELLED[:2]) else None for t in texts]
    if not all(lab is not None and lab[1] for lab in labels):
        return False
    letters = [lab[0] for lab in labels]  # type: ignore[index]
    return len(set(letters)) < len(letters)


def _split_inline_options(raw: str) -> list[str]:
    """'A. x B. y C. z' on one line, as some exports flatten them."""
    parts = re.split(r"\s+(?=[(\[]?[B-Z][.)\]:]\s)", raw.strip())
    return parts if len(parts) > 1 else [raw]


def normalise_answer(raw: Any, options: list[str], rec: Record, field: str = "answer") -> str:
    """The gold letter from "A", "a", "A.", "(A)", "A. text" or the option's text."""
    letters = [chr(ord("A") + i) for i in range(len(options))]
    text = as_label(raw)
    m = re.fullmatch(r"[(\[]?([A-Za-z])[)\]]?[.:]?", text)
    if m:
        letter = m.group(1).upper()
        if letter in letters:
            return letter
        raise rec.error(f"field {field!r}: answer {text!r} is not one of the options {letters}")
    split = _split_label(text)
    folded = [_fold(o.split(". ", 1)[1]) for o in options]
    if split and split[0] in letters and (not split[1] or _fold(split[1]) == folded[letters.index(split[0])]):
        return split[0]
    if _fold(text) in folded and folded.count(_fold(text)) == 1:
        return letters[folded.index(_fold(text))]
    raise rec.error(f"field {field!r}: cannot match answer {text!r} to a letter or option text of {options}")


def _fold(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", s.casefold()).split())


# -- media, ids and durations -------------------------------------------------------------------------


def media_file(
    rec: Record,
    media_root: Path,
    names: Sequence[str],
    *,
    field: str,
    allow_absolute: bool = False,
    required: bool = True,
) -> Path | None:
    """The media file a record names: the first of ``names`` (paths relative to ``media_root``) that exists,
    else the first one (which the runner then reports as missing; when not ``required``, None).

    The chosen path must lie inside ``media_root`` once resolved (``data.paths.contain``): a record whose id
    is ``../../outside/x`` or an absolute path, or whose file is a symlink leading out of the media root, is
    an :class:`AnnotationError` naming the file, record and field, unless ``allow_absolute`` (the
    ``--allow-absolute-media`` switch). Returning the expected path rather than ``None`` for a required
    file keeps the missing-media report useful: it says where the file was looked for.
    """
    if not names:
        raise rec.error(f"field {field!r}: no media file name")
    found = next((n for n in names if (media_root / n).is_file()), None)
    if found is None and not required:
        return None
    chosen = found if found is not None else names[0]
    try:
        return contain(chosen, media_root, allow_absolute=allow_absolute)
    except MediaPathError as e:
        raise rec.error(f"field {field!r}: media path {chosen!r} {e.reason}") from None


class QidAllocator:
    """Stable question ids for benchmarks without one: ``<video>#<n>``, n counting that video's questions in
    file order, so that ids do not shift when other videos are added or removed."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def __call__(self, video_id: str) -> str:
        self._counts[video_id] += 1
        return f"{video_id}#{self._counts[video_id]}"


def check_unique_qids(qids: Iterable[str], path: Path) -> None:
    dup = [q for q, n in Counter(qids).items() if n > 1]
    if dup:
        raise AnnotationError(f"{path}: duplicate question ids {dup[:5]}; resume and scoring need unique ids")


def parse_seconds(value: Any) -> float | None:
    """Seconds from 12.5, "12.5", "MM:SS", "HH:MM:SS", "30s", "2 min", "1h"; None when unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    s = as_label(value).lower()
    if re.fullmatch(r"\d+(?::\d{1,2}){1,2}(?:\.\d+)?", s):
        total = 0.0
        for part in s.split(":"):
            total = total * 60 + float(part)
        return total
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hours?)?", s)
    if not m:
        return None
    scale = {"": 1, "s": 1, "m": 60, "h": 3600}[(m.group(2) or "")[:1]]
    return float(m.group(1)) * scale
