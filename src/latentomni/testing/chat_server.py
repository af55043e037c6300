"""A scripted OpenAI-compatible chat server on 127.0.0.1, for the synth tests and benchmark.

Why a real HTTP server instead of mocking the client: the pipeline talks to vLLM through the official
``openai`` client, and the failure modes that matter (429s, 500s, slow replies, HTTP 400 for media a
text-only model cannot take, malformed bodies) live in the transport. A server that speaks the wire
protocol exercises exactly the code a production run executes.

The server is deliberately small: HTTP/1.1 with keep-alive over ``asyncio`` streams, one route
(``POST .../chat/completions``), loopback only. It is bounded in every direction so that a forgotten
server cannot outlive its test: at most ``max_requests`` requests, and it shuts itself down after
``idle_timeout_s`` without traffic or ``lifetime_s`` in total.

A *responder* turns the decoded request body into a :class:`ScriptedReply`. Tests pass any callable
(thread mode); :class:`CannedResponder` is a plain-data one that can be sent to a separate process
(:meth:`FakeChatServer.in_subprocess`), which the benchmark uses so that the server's CPU time does not
compete with the client under the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CannedResponder", "FakeChatServer", "ScriptedReply", "request_text", "schema_name"]


@dataclass
class ScriptedReply:
    """What the fake server answers to one request.

    ``content`` becomes the assistant message of a normal chat completion; ``status`` other than 200
    sends an OpenAI-style error body instead; ``raw_body`` (bytes) replaces the whole body, for
    malformed-transport cases; ``delay_s`` sleeps before answering (slow replies, latency benchmarks).
    """

    content: str | None = None
    status: int = 200
    delay_s: float = 0.0
    error_message: str = "scripted error"
    raw_body: bytes | None = None
    usage: tuple[int, int] = (20, 10)
    finish_reason: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[dict[str, Any]], ScriptedReply]


def schema_name(body: dict[str, Any]) -> str | None:
    """The ``json_schema`` name a request asked for, if it asked for one."""
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        return (rf.get("json_schema") or {}).get("name")
    return None


def request_text(body: dict[str, Any]) -> str:
    """All text of a request's messages, concatenated (media parts are skipped)."""
    chunks: list[str] = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str):
            chunks.append(content)
        elif isinstance(content, list):
            chunks.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "\n".join(chunks)


@dataclass
class CannedResponder:
    """A plain-data responder: the first rule whose key is the request's schema name, or a substring of
    its text, gives the reply content; every reply waits ``delay_s``."""

    rules: list[tuple[str, str]]
    delay_s: float = 0.0
    fallback: str = "{}"

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        name = schema_name(body)
        text = None
        for key, content in self.rules:
            if key == name:
                return ScriptedReply(content=content, delay_s=self.delay_s)
            text = request_text(body) if text is None else text
            if key in text:
                return ScriptedReply(content=content, delay_s=self.delay_s)
        return ScriptedReply(content=self.fallback, delay_s=self.delay_s)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}


class FakeChatServer:
    """OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1, in a background thread.

    Use as a context manager; ``base_url`` is ready once ``__enter__`` returns. ``bodies`` records every
    decoded request body in arrival order (tests assert on what was actually sent).
    """

    def __init__(
        self,
        responder: Responder,
        *,
        max_requests: int = 10_000,
        idle_timeout_s: float = 30.0,
        lifetime_s: float = 300.0,
        record: bool = True,
    ) -> None:
        self.responder = responder
        self.max_requests = max_requests
        self.idle_timeout_s = idle_timeout_s
        self.lifetime_s = lifetime_s
        self.record = record
        self.bodies: list[dict[str, Any]] = []
        self.count = 0
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._last = time.monotonic()
        self._error: BaseException | None = None
        self._conns: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> FakeChatServer:
        self._thread = threading.Thread(target=self._run, name="fake-chat-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake chat server did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"fake chat server failed to start: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # surfaced by start()
            self._error = e
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        started = time.monotonic()
        async with server:
            while not self._stop.is_set():
                now = time.monotonic()
                if now - started > self.lifetime_s or now - self._last > self.idle_timeout_s:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.2)
            server.close()
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)

    # -- protocol -----------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self._last = time.monotonic()
                status, payload, extra = await self._reply(method, path, body)
                reason = _REASONS.get(status, "Status")
                head_out = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
                            f"Content-Length: {len(payload)}", "Connection: keep-alive"]
                head_out += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(head_out) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError,
                asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _reply(self, method: str, path: str, raw: bytes) -> tuple[int, bytes, dict[str, str]]:
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return 404, _error_body(f"no route {method} {path}", 404), {}
        self.count += 1
        if self.count > self.max_requests:
            if self._stop is not None:
                self._stop.set()
            return 503, _error_body("fake server request budget exhausted", 503), {}
        body = json.loads(raw)
        if self.record:
            self.bodies.append(body)
        reply = self.responder(body)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.raw_body is not None:
            return reply.status, reply.raw_body, reply.headers
        if reply.status != 200:
            return reply.status, _error_body(reply.error_message, reply.status), reply.headers
        return 200, _completion_body(body.get("model", "fake"), reply, self.count), reply.headers

    # -- separate-process mode ----------------------------------------------------------------------
    @staticmethod
    def in_subprocess(responder: CannedResponder, **kwargs: Any) -> SubprocessServer:
        """A server with a :class:`CannedResponder` in its own process (own GIL); a context manager."""
        return SubprocessServer(responder, kwargs)


def _error_body(message: str, status: int) -> bytes:
    kind = {400: "invalid_request_error", 429: "rate_limit_error"}.get(status, "server_error")
    return json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()


def _completion_body(model: str, reply: ScriptedReply, n: int) -> bytes:
    prompt_tokens, completion_tokens = reply.usage
    return json.dumps({
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                     "message": {"role": "assistant", "content": reply.content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }).encode()


class SubprocessServer:
    """A :class:`FakeChatServer` with a :class:`CannedResponder` in a child Python process.

    The child is ``python -m latentomni.testing.chat_server`` (not ``multiprocessing``, which would re-import
    the caller's ``__main__``). It reads its responder as JSON on stdin, prints its port, and serves
    until its stdin closes -- so it also stops when the parent dies.
    """

    def __init__(self, responder: CannedResponder, kwargs: dict[str, Any]) -> None:
        self._spec = json.dumps({"rules": responder.rules, "delay_s": responder.delay_s,
                                 "fallback": responder.fallback, "kwargs": kwargs})
        self._proc: subprocess.Popen[str] | None = None
        self.port: int | None = None

    def __enter__(self) -> SubprocessServer:
        self._proc = subprocess.Popen([sys.executable, "-m", "latentomni.testing.chat_server"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(self._spec + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line.strip().isdigit():
            self.__exit__()
            raise RuntimeError(f"fake chat server process did not start (said {line!r})")
        self.port = int(line)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._proc.stdin.close()  # type: ignore[union-attr]
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)


def _serve_from_stdin() -> None:
    spec = json.loads(sys.stdin.readline())
    responder = CannedResponder([tuple(r) for r in spec["rules"]], spec["delay_s"], spec["fallback"])
    server = FakeChatServer(responder, record=False, **spec["kwargs"]).start()
    print(server.port, flush=True)
    try:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
    finally:
        server.stop()


if __name__ == "__main__":
    _serve_from_stdin()
