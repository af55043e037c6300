"""Append-only stage outputs keyed by record id, and the per-stage summary.

Every stage writes two JSONL files under ``<run_dir>/stages/``: ``<stage>.jsonl`` (records that go on)
and ``<stage>.drops.jsonl`` (``{"id", "reason", "detail"}`` for records that stop here). A record is
written once, when it is finished, and flushed at once. On restart the ids already in either file are
skipped, so a killed run loses at most the records in flight and duplicates none; a line torn by the
kill is cut off before appending. A lock file keeps two processes from running the same stage.

The summary (``<run_dir>/summaries/<stage>.json``) is recomputed from the files, restricted to the
stage's current input, so ``in == out + dropped + pending`` holds by construction and ``pending`` is
0 exactly when the stage has finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["Drop", "StageStore", "StageSummary", "StoreError"]


class StoreError(RuntimeError):
    """A stage file is unusable (another process holds the stage, or a line is corrupt)."""


@dataclass(frozen=True)
class Drop:
    id: str
    reason: str
    detail: str = ""


@dataclass
class StageSummary:
    """Counts of one stage over its current input, plus what this invocation cost."""

    stage: str
    inputs: int
    outputs: int
    dropped: dict[str, int]
    pending: int
    traffic: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    requests_per_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def complete(self) -> bool:
        return self.pending == 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(dropped_total=self.dropped_total, complete=self.complete)
        return d


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line without its newline (the write a kill interrupted)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 1))
        if fh.read(1) == b"\n":
            return
        block = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl != -1:
                fh.truncate(start + nl + 1)
                return
            pos = start
        fh.truncate(0)


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise StoreError(
                    f"{path}:{lineno}: corrupt stage output ({e.msg}); delete the line or the file"
                ) from None


class StageStore:
    """The output files of one stage. Use :meth:`open` (a context manager) to append."""

    def __init__(self, run_dir: str | Path, stage: str) -> None:
        self.stage = stage
        self.dir = Path(run_dir) / "stages"
        self.out_path = self.dir / f"{stage}.jsonl"
        self.drops_path = self.dir / f"{stage}.drops.jsonl"
        self.summary_path = Path(run_dir) / "summaries" / f"{stage}.json"
        self._lock_path = self.dir / f".{stage}.lock"
        self._out: IO[str] | None = None
        self._drops: IO[str] | None = None

    # -- reading ------------------------------------------------------------------------------------
    def outputs(self) -> list[dict[str, Any]]:
        return list(_read_jsonl(self.out_path))

    def drops(self) -> list[Drop]:
        return [Drop(d["id"], d["reason"], d.get("detail", "")) for d in _read_jsonl(self.drops_path)]

    def done_ids(self) -> set[str]:
        return {r["id"] for r in self.outputs()} | {d.id for d in self.drops()}

    # -- writing ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open(self) -> Iterator[StageStore]:
        """Hold the stage lock, repair torn tails, and keep both files open for appending."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    f"stage '{self.stage}' is already running in another process (lock {self._lock_path})"
                ) from None
            _cut_torn_tail(self.out_path)
            _cut_torn_tail(self.drops_path)
            self._open_handles()
            try:
                yield self
            finally:
                self._close_handles()

    def _open_handles(self) -> None:
        self._out = self.out_path.open("a", encoding="utf-8")
        self._drops = self.drops_path.open("a", encoding="utf-8")

    def _close_handles(self) -> None:
        for fh in (self._out, self._drops):
            if fh is not None:
                fh.close()
        self._out = self._drops = None

    def append(self, record: dict[str, Any]) -> None:
        assert self._out is not None, "StageStore.append outside open()"
        self._out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._out.flush()

    def append_drop(self, drop: Drop) -> None:
        assert self._drops is not None, "StageStore.append_drop outside open()"
        self._drops.write(json.dumps(asdict(drop), ensure_ascii=False) + "\n")
        self._drops.flush()

    def rewrite(self, records: Iterable[dict[str, Any]], drops: Iterable[Drop]) -> None:
        """Replace both files atomically: for stages that are pure functions of their whole input."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for path, lines in ((self.out_path, (json.dumps(r, ensure_ascii=False) for r in records)),
                            (self.drops_path, (json.dumps(asdict(d), ensure_ascii=False) for d in drops))):
            tmp = path.with_suffix(path.suffix + ".tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                for line in lines:
                    fh.write(line + "\n")
            os.replace(tmp, path)

    def forget_drops(self, reasons: set[str]) -> int:
        """Remove drop records with these reasons (e.g. ``request_failed`` after an outage) so that a
        rerun processes those records again. Returns how many were removed.

        The rewrite replaces the files (``os.replace``), so append handles held by :meth:`open` would
        keep writing into the unlinked old files and every retried record would be lost; they are
        closed before and reopened on the new files after."""
        drops = self.drops()
        keep = [d for d in drops if d.reason not in reasons]
        if len(keep) != len(drops):
            reopen = self._out is not None
            if reopen:
                self._close_handles()
            self.rewrite(self.outputs(), keep)
            if reopen:
                self._open_handles()
        return len(drops) - len(keep)

    # -- summary ------------------------------------------------------------------------------------
    def summarize(self, input_ids: list[str], **extra: Any) -> StageSummary:
        wanted = set(input_ids)
        out_ids = {r["id"] for r in self.outputs()} & wanted
        dropped: Counter[str] = Counter()
        seen: set[str] = set()
        for d in self.drops():
            if d.id in wanted and d.id not in out_ids and d.id not in seen:
                dropped[d.reason] += 1
                seen.add(d.id)
        pending = len(wanted) - len(out_ids) - len(seen)
        return StageSummary(self.stage, len(wanted), len(out_ids), dict(sorted(dropped.items())), pending, **extra)

    def write_summary(self, summary: StageSummary) -> None:
        self.summary_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.summary_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary.as_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.summary_path)

    def read_summary(self) -> dict[str, Any] | None:
        if not self.summary_path.exists():
            return None
        return json.loads(self.summary_path.read_text(encoding="utf-8"))
