"""On-disk cache of LLM responses, keyed by a hash of everything that determines the response.

Why: a run of tens of thousands of requests will be interrupted. With every response stored the moment
it arrives, a restarted run replays what it already paid for and only sends what is missing; the
stage outputs (``store.py``) then make the replay cheap as well. The key covers model, messages and
sampling parameters (and the content hash of any media passed by file URL), never the base URL: the
same request to any replica of an endpoint is the same request.

SQLite in WAL mode is one file, survives a killed process without corruption, and a commit per
response costs tens of microseconds.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CachedResponse", "ResponseCache", "request_key"]


def request_key(params: dict[str, Any], media_digests: list[str] | None = None) -> str:
    """SHA-256 of the canonical JSON of the request parameters (plus media content digests)."""
    payload = json.dumps({"params": params, "media": media_digests or []}, sort_keys=True, ensure_ascii=False,
                         separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedResponse:
    content: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class ResponseCache:
    """``key -> response`` in one SQLite file. Not shared between processes running the same stage
    (a stage takes a lock), but safe to read while another stage writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, content TEXT, finish_reason TEXT,"
            " prompt_tokens INTEGER, completion_tokens INTEGER, model TEXT)"
        )

    def get(self, key: str) -> CachedResponse | None:
        row = self._db.execute(
            "SELECT content, finish_reason, prompt_tokens, completion_tokens FROM responses WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else CachedResponse(*row)

    def put(self, key: str, response: CachedResponse, model: str = "") -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
            (key, response.content, response.finish_reason, response.prompt_tokens, response.completion_tokens,
             model),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()
