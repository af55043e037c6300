"""LLM access for every stage: the official ``openai`` client against OpenAI-compatible servers.

One :class:`LLMClient` serves a whole stage. Per request it

1. builds the parameters (model, messages, sampling, ``response_format`` from the reply model),
2. answers from the response cache if it can (and counts the hit),
3. otherwise sends through one of the endpoint's clients, round-robin over base URLs, at most
   ``max_concurrency`` requests in flight per endpoint, retrying 429/5xx/timeouts/connection errors
   with exponential backoff and jitter,
4. validates the reply against the reply model; an invalid reply gets a repair turn ("your reply was
   not valid because ...") up to ``invalid_reply_attempts`` times.

Failures that concern one sample (an HTTP 400 because a text-only model got a video, retries
exhausted, a reply that never validates) raise :class:`ItemDropped` with a reason code: the stage
records it and moves on. Failures that concern the whole run (wrong URL, bad API key, unknown
model) raise :class:`SynthError`, which stops the stage with a message saying what to fix.

Requests go through ``AsyncOpenAI.post("/chat/completions", ...)`` -- the client's documented way to
send parameters it has no typed argument for (vLLM's ``chat_template_kwargs``, media parts) -- which
also skips the typed-parameter transformation that costs about a millisecond per request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from latentomni.synth.cache import CachedResponse, ResponseCache, request_key
from latentomni.synth.config import ConfigError, EndpointConfig, LLMCallConfig, RetryConfig
from latentomni.synth.replies import R, ReplyInvalid, parse_reply, schema_digest, strict_json_schema

__all__ = ["ItemDropped", "LLMClient", "SynthError", "TrafficStats", "audio_part", "cache_key", "video_part"]

log = logging.getLogger(__name__)

# A check a stage runs on a parsed reply beyond the schema (e.g. fusion kept every sentence):
# returns None when fine, or (reason code, explanation) to trigger a repair turn.
ReplyCheck = Callable[[Any], tuple[str, str] | None]


class SynthError(RuntimeError):
    """A problem with the run as a whole (configuration, endpoint, authentication): stop and fix."""


class ItemDropped(Exception):
    """This sample cannot go on; ``reason`` is the drop-reason code recorded in the stage output."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class TrafficStats:
    """What one stage cost: requests actually sent vs answered from cache, retries, tokens."""

    requests_sent: int = 0
    cache_hits: int = 0
    retries: int = 0
    repair_turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_call: dict[str, int] = field(default_factory=dict)
    by_url: dict[str, int] = field(default_factory=dict)  # shows whether round-robin reached every replica

    def as_dict(self) -> dict[str, Any]:
        return {"requests_sent": self.requests_sent, "cache_hits": self.cache_hits, "retries": self.retries,
                "repair_turns": self.repair_turns, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "requests_by_call": dict(self.by_call),
                "requests_by_url": dict(self.by_url)}


@dataclass(frozen=True)
class Call:
    """A resolved LLM call: its config name (for logs and stats) and settings."""

    name: str
    config: LLMCallConfig


# -- media content parts ----------------------------------------------------------------------------
def video_part(path: str | Path, transport: str) -> dict[str, Any]:
    """An OpenAI-style video part: a base64 data URL, or a ``file://`` URL the server reads itself
    (vLLM needs ``--allowed-local-media-path`` for that)."""
    path = Path(path)
    if transport == "file_url":
        return {"type": "video_url", "video_url": {"url": path.resolve().as_uri()}}
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{data}"}}


def audio_part(path: str | Path) -> dict[str, Any]:
    """An ``input_audio`` part with the WAV as base64 data (the OpenAI format carries audio inline only;
    a segment's 16 kHz mono WAV is small)."""
    path = Path(path)
    return {"type": "input_audio",
            "input_audio": {"data": base64.b64encode(path.read_bytes()).decode("ascii"), "format": "wav"}}


def _file_digests(messages: list[dict[str, Any]]) -> list[str]:
    """Content hashes of media passed as file URLs, so an edited file does not hit a stale cache entry."""
    digests = []
    for msg in messages:
        content = msg.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            for key in ("video_url",):
                url = (part.get(key) or {}).get("url", "") if isinstance(part, dict) else ""
                if url.startswith("file://"):
                    path = Path(url[len("file://") :])
                    digests.append(hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing")
    return digests


def cache_key(params: dict[str, Any], schema_sha256: str | None = None) -> str:
    """The response-cache key of a request body.

    A JSON schema enters the key by its digest rather than its text (pass ``schema_sha256`` when it is
    known, as the client does per reply model, to skip re-serialising it); media passed by file URL
    enter by their content hash.
    """
    rf = params.get("response_format")
    keyed = params
    if rf and rf.get("type") == "json_schema":
        spec = rf["json_schema"]
        digest = schema_sha256 or hashlib.sha256(json.dumps(spec["schema"], sort_keys=True).encode()).hexdigest()
        keyed = {**params, "response_format": {"type": "json_schema", "name": spec["name"], "schema_sha256": digest,
                                               "strict": spec.get("strict")}}
    return request_key(keyed, _file_digests(params["messages"]))


def _repair_message(problem: ReplyInvalid) -> dict[str, Any]:
    return {"role": "user", "content": (
        f"Your previous reply could not be used: {problem.detail}. "
        "Answer the original request again, following every instruction, and reply with only what was asked for."
    )}


# openai 3.x builds on httpx2, 1.x on httpx; either factory applies the SDK's pool and timeout defaults
_default_http_client = getattr(openai, "DefaultAsyncHttpx2Client", None) or openai.DefaultAsyncHttpxClient

_TRANSIENT = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
              openai.APIConnectionError, openai.ConflictError)
_FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


class LLMClient:
    """Sends a stage's requests; see the module docstring. Use ``async with`` or call :meth:`aclose`."""

    def __init__(
        self,
        endpoints: dict[str, EndpointConfig],
        cache: ResponseCache,
        retry: RetryConfig,
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.endpoints = endpoints
        self.cache = cache
        self.retry = retry
        self.stats = TrafficStats()
        self._sleep = sleep
        self._clients: dict[str, itertools.cycle[tuple[str, openai.AsyncOpenAI]]] = {}
        self._all_clients: list[openai.AsyncOpenAI] = []
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._ssl: ssl.SSLContext | None = None

    # -- plumbing -----------------------------------------------------------------------------------
    def _client(self, endpoint: str) -> tuple[str, openai.AsyncOpenAI]:
        if endpoint not in self._clients:
            cfg = self.endpoints[endpoint]
            try:
                key = cfg.api_key(endpoint)
            except ConfigError as e:
                raise SynthError(str(e)) from None
            shards = max(1, -(-cfg.max_concurrency // (cfg.connections_per_client * len(cfg.base_urls))))
            if self._ssl is None:  # building a TLS context costs ~30 ms per client: build it once, share it
                self._ssl = ssl.create_default_context()
            pool = []
            for _shard in range(shards):
                for url in cfg.base_urls:  # interleaved: consecutive requests go to different servers
                    http = _default_http_client(verify=self._ssl)
                    client = openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=cfg.timeout_s,
                                                http_client=http)
                    pool.append((url, client))
                    self._all_clients.append(client)
            self._clients[endpoint] = itertools.cycle(pool)
            self._semaphores[endpoint] = asyncio.Semaphore(cfg.max_concurrency)
        return next(self._clients[endpoint])

    async def aclose(self) -> None:
        for client in self._all_clients:
            await client.close()
        self._all_clients.clear()
        self._clients.clear()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def endpoint_of(self, call: Call) -> EndpointConfig:
        return self.endpoints[call.config.endpoint]

    def build_params(self, call: Call, messages: list[dict[str, Any]], reply_model: type[R]) -> dict[str, Any]:
        """The request body: model, messages, sampling and the reply contract per endpoint setting."""
        cfg = call.config
        s = cfg.sampling
        params: dict[str, Any] = {"model": cfg.model, "messages": messages, "temperature": s.temperature,
                                  "top_p": s.top_p, "max_tokens": s.max_tokens}
        if s.seed is not None:
            params["seed"] = s.seed
        mode = self.endpoint_of(call).response_format
        if mode == "json_schema":
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": reply_model.__name__, "schema": strict_json_schema(reply_model), "strict": True}}
        elif mode == "json_object":
            params["response_format"] = {"type": "json_object"}
        params.update(s.extra_body)
        return params

    def _backoff(self, attempt: int, error: Exception) -> float:
        r = self.retry
        delay = min(r.max_delay_s, r.base_delay_s * (2**attempt))
        delay *= 1 - r.jitter * random.random()
        response = getattr(error, "response", None)
        after = response.headers.get("retry-after") if response is not None else None
        if after:
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(after), r.max_delay_s))
        return delay

    # -- one HTTP exchange (cached, retried) ----------------------------------------------------------
    async def _complete(self, call: Call, params: dict[str, Any], schema_sha256: str | None) -> CachedResponse:
        key = cache_key(params, schema_sha256)
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cache_hits += 1
            return hit
        endpoint = call.config.endpoint
        url, client = self._client(endpoint)
        last: Exception | None = None
        for attempt in range(self.retry.max_attempts):
            if attempt:
                self.stats.retries += 1
                await self._sleep(self._backoff(attempt - 1, last))  # type: ignore[arg-type]
                url, client = self._client(endpoint)
            try:
                async with self._semaphores[endpoint]:
                    self.stats.requests_sent += 1
                    self.stats.by_call[call.name] = self.stats.by_call.get(call.name, 0) + 1
                    self.stats.by_url[url] = self.stats.by_url.get(url, 0) + 1
                    completion = await client.post("/chat/completions", body=params, cast_to=ChatCompletion)
            except _FATAL as e:
                raise SynthError(
                    f"{call.name}: endpoint '{endpoint}' ({url}) answered HTTP {e.status_code} for model "
                    f"'{call.config.model}': {_message(e)}. Check base_urls, the model name and api_key_env."
                ) from None
            except _TRANSIENT as e:
                last = e
                log.debug("%s: transient error from %s (attempt %d): %s", call.name, url, attempt + 1, _message(e))
                continue
            except openai.APIStatusError as e:
                if e.status_code >= 500:
                    last = e
                    continue
                raise ItemDropped(
                    "request_rejected", f"{call.name}: HTTP {e.status_code} from {url}: {_message(e)}"
                ) from None
            except (openai.APIResponseValidationError, ValueError) as e:  # a body that is not a completion
                last = e
                continue
            if not completion.choices:
                last = ValueError("completion without choices")
                continue
            choice = completion.choices[0]
            usage = completion.usage
            response = CachedResponse(
                content=choice.message.content if choice.message is not None else None,
                finish_reason=choice.finish_reason,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
            )
            self.stats.prompt_tokens += response.prompt_tokens
            self.stats.completion_tokens += response.completion_tokens
            self.cache.put(key, response, call.config.model)
            return response
        raise ItemDropped(
            "request_failed", f"{call.name}: {self.retry.max_attempts} attempts failed; last error: {_message(last)}"
        )

    # -- one typed question -------------------------------------------------------------------------
    async def ask(
        self,
        call: Call,
        messages: list[dict[str, Any]],
        reply_model: type[R],
        *,
        check: ReplyCheck | None = None,
    ) -> R:
        """Send ``messages`` and return the validated reply, repairing invalid replies by re-asking."""
        conversation = list(messages)
        problem: ReplyInvalid | None = None
        for _turn in range(1 + self.retry.invalid_reply_attempts):
            if problem is not None:
                self.stats.repair_turns += 1
            params = self.build_params(call, conversation, reply_model)
            response = await self._complete(call, params, schema_digest(reply_model))
            # bare text stands for the reply only where no JSON was asked for and nothing was cut off
            plain_text = "response_format" not in params and response.finish_reason != "length"
            try:
                reply = parse_reply(response.content, reply_model, plain_text=plain_text)
                verdict = check(reply) if check is not None else None
                if verdict is not None:
                    raise ReplyInvalid(*verdict)
                return reply
            except ReplyInvalid as e:
                problem = e
                if response.finish_reason == "length":
                    raise ItemDropped(
                        "reply_truncated",
                        f"{call.name}: reply hit max_tokens ({call.config.sampling.max_tokens}) before it was valid",
                    ) from None
                conversation = [*conversation, {"role": "assistant", "content": response.content or ""},
                                _repair_message(e)]
        assert problem is not None
        raise ItemDropped(problem.reason, f"{call.name}: {problem.detail}")


def _message(error: Exception | None) -> str:
    if error is None:
        return "unknown error"
    if isinstance(error, openai.APIStatusError):
        body = error.body
        if isinstance(body, dict):
            inner = body.get("error", body)
            if isinstance(inner, dict) and inner.get("message"):
                return str(inner["message"])[:300]
        return f"HTTP {error.status_code}"
    return f"{type(error).__name__}: {str(error)[:300]}"

