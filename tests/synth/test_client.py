"""The LLM client against a real loopback server: retries, round-robin, cache, typed replies, errors."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from latentomni.synth.cache import ResponseCache
from latentomni.synth.client import Call, ItemDropped, LLMClient, SynthError, audio_part, cache_key, video_part
from latentomni.synth.config import EndpointConfig, LLMCallConfig, RetryConfig, SamplingConfig
from latentomni.synth.replies import CaptionReply, FusionReply, OpenQAReply, RefineReply
from latentomni.testing.chat_server import FakeChatServer, ScriptedReply

GOOD = json.dumps({"question": "Which object rings when the ball lands?", "answer": "the bell",
                   "reasoning_type": "causal"})
MESSAGES = [{"role": "user", "content": "make a question"}]


class Script:
    """Replies from a queue (then GOOD forever); records what was sent."""

    def __init__(self, *replies: ScriptedReply) -> None:
        self.queue = list(replies)

    def __call__(self, body):
        return self.queue.pop(0) if self.queue else ScriptedReply(GOOD)


def run(coro):
    return asyncio.run(coro)


async def _ask(urls, tmp_path, *, script=None, sampling=None, retry=None, messages=MESSAGES, model=OpenQAReply,
               endpoint_kw=None, check=None, sleeps=None, times=1):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    endpoint = EndpointConfig(base_urls=urls, timeout_s=0.5, **(endpoint_kw or {}))
    retry = retry or RetryConfig(base_delay_s=0.0, max_attempts=3)

    async def fake_sleep(s):
        if sleeps is not None:
            sleeps.append(s)

    async with LLMClient({"e": endpoint}, cache, retry, sleep=fake_sleep) as client:
        call = Call("qa.llm", LLMCallConfig(endpoint="e", model="m", sampling=sampling or SamplingConfig()))
        replies = [await client.ask(call, messages, model, check=check) for _ in range(times)]
        stats = client.stats
    cache.close()
    return replies, stats


def test_transient_errors_are_retried_with_growing_backoff(tmp_path):
    script = Script(ScriptedReply(status=429), ScriptedReply(status=500), ScriptedReply(status=503))
    sleeps: list[float] = []
    with FakeChatServer(script) as s:
        (reply,), stats = run(_ask([s.base_url], tmp_path, sleeps=sleeps,
                                   retry=RetryConfig(max_attempts=4, base_delay_s=0.1, max_delay_s=10, jitter=0.5)))
    assert reply.answer == "the bell" and stats.requests_sent == 4 and stats.retries == 3
    assert len(sleeps) == 3
    for n, delay in enumerate(sleeps):  # base * 2^n, shortened by at most 50 % jitter
        assert 0.1 * 2**n * 0.5 <= delay <= 0.1 * 2**n


def test_retry_after_is_respected_up_to_the_cap(tmp_path):
    sleeps: list[float] = []
    script = Script(ScriptedReply(status=429, headers={"Retry-After": "2"}))
    with FakeChatServer(script) as s:
        run(_ask([s.base_url], tmp_path, script=script, sleeps=sleeps,
                 retry=RetryConfig(base_delay_s=0.01, max_delay_s=5)))
    assert sleeps == [2.0]


def test_exhausted_retries_drop_the_item(tmp_path):
    with FakeChatServer(lambda body: ScriptedReply(status=500)) as s, pytest.raises(ItemDropped) as e:
        run(_ask([s.base_url], tmp_path))
    assert e.value.reason == "request_failed" and "3 attempts" in e.value.detail


def test_slow_reply_times_out_and_is_retried(tmp_path):
    script = Script(ScriptedReply(GOOD, delay_s=2.0))
    with FakeChatServer(script) as s:
        (reply,), stats = run(_ask([s.base_url], tmp_path))
    assert reply.answer == "the bell" and stats.retries == 1


def test_media_rejected_by_a_text_only_server_is_a_recorded_drop(tmp_path):
    reject = ScriptedReply(status=400, error_message="Qwen3 does not support multimodal inputs")
    with FakeChatServer(lambda body: reject) as s, pytest.raises(ItemDropped) as e:
        run(_ask([s.base_url], tmp_path))
    assert e.value.reason == "request_rejected" and "multimodal" in e.value.detail


@pytest.mark.parametrize("status", [401, 404])
def test_configuration_errors_stop_the_run(tmp_path, status):
    reply = ScriptedReply(status=status, error_message="model 'm' not found")
    with FakeChatServer(lambda body: reply) as s, \
            pytest.raises(SynthError, match=f"HTTP {status}.*model 'm' not found.*Check base_urls"):
        run(_ask([s.base_url], tmp_path))


def test_round_robin_and_cache(tmp_path):
    with FakeChatServer(Script()) as a, FakeChatServer(Script()) as b:
        messages = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]

        async def go():
            cache = ResponseCache(tmp_path / "c.sqlite")
            async with LLMClient({"e": EndpointConfig(base_urls=[a.base_url, b.base_url])}, cache,
                                 RetryConfig()) as client:
                call = Call("qa.llm", LLMCallConfig(endpoint="e", model="m"))
                for m in messages + messages:
                    await client.ask(call, m, OpenQAReply)
                return client.stats

        stats = run(go())
    assert (len(a.bodies), len(b.bodies)) == (3, 3)
    assert stats.requests_sent == 6 and stats.cache_hits == 6
    assert stats.by_url == {a.base_url: 3, b.base_url: 3}


def test_seed_only_when_configured_and_extra_body_passes_through(tmp_path):
    with FakeChatServer(Script()) as s:
        run(_ask([s.base_url], tmp_path))
        run(_ask([s.base_url], tmp_path / "x", sampling=SamplingConfig(
            seed=7, extra_body={"chat_template_kwargs": {"enable_thinking": False}})))
    assert "seed" not in s.bodies[0]
    assert s.bodies[1]["seed"] == 7 and s.bodies[1]["chat_template_kwargs"] == {"enable_thinking": False}


@pytest.mark.parametrize("mode, expected", [("json_schema", "json_schema"), ("json_object", "json_object"),
                                            ("none", None)])
def test_response_format_follows_the_endpoint_switch(tmp_path, mode, expected):
    with FakeChatServer(Script()) as s:
        run(_ask([s.base_url], tmp_path, endpoint_kw={"response_format": mode}))
    rf = s.bodies[0].get("response_format")
    assert (rf or {}).get("type") == expected
    if expected == "json_schema":
        assert rf["json_schema"]["name"] == "OpenQAReply" and rf["json_schema"]["strict"] is True


def test_invalid_reply_gets_a_repair_turn(tmp_path):
    script = Script(ScriptedReply('{"question": "Q?"}'))
    with FakeChatServer(script) as s:
        (reply,), stats = run(_ask([s.base_url], tmp_path))
    assert reply.answer == "the bell" and stats.repair_turns == 1
    repair = s.bodies[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"question": "Q?"}'}
    assert "could not be used" in repair[-1]["content"] and "answer" in repair[-1]["content"]


def test_reply_that_never_validates_is_dropped_not_silently_kept(tmp_path):
    with FakeChatServer(lambda body: ScriptedReply("I cannot help with that.")) as s, pytest.raises(ItemDropped) as e:
        run(_ask([s.base_url], tmp_path))
    assert e.value.reason == "invalid_reply" and len(s.bodies) == 3  # 1 + 2 repair turns


def test_a_check_failure_names_its_own_reason(tmp_path):
    def check(reply):
        return ("fusion_lost_sentences", "a sentence is missing") if "wall" not in reply.narrative else None

    with FakeChatServer(lambda body: ScriptedReply('{"narrative": "A ball falls."}')) as s, \
            pytest.raises(ItemDropped) as e:
        run(_ask([s.base_url], tmp_path, model=FusionReply, check=check))
    assert e.value.reason == "fusion_lost_sentences"


def test_truncated_reply_is_reported_as_such(tmp_path):
    with FakeChatServer(lambda body: ScriptedReply('{"question": "Which obj', finish_reason="length")) as s, \
            pytest.raises(ItemDropped) as e:
        run(_ask([s.base_url], tmp_path))
    assert e.value.reason == "reply_truncated" and len(s.bodies) == 1


@pytest.mark.parametrize("mode", ["json_schema", "none"])
def test_cut_off_json_never_becomes_a_plain_text_reply(tmp_path, mode):
    # what vLLM sends when a schema-constrained string runs into max_tokens; RefineReply accepts bare text
    # from a plain-text endpoint, but a fragment of JSON is not a caption
    cut = ScriptedReply('{"caption":":reperepereperep', finish_reason="length")
    with FakeChatServer(lambda body: cut) as s, pytest.raises(ItemDropped) as e:
        run(_ask([s.base_url], tmp_path, model=RefineReply, endpoint_kw={"response_format": mode}))
    assert e.value.reason == "reply_truncated" and len(s.bodies) == 1


def test_bare_text_is_a_reply_only_where_no_json_was_asked_for(tmp_path):
    text = ScriptedReply("A ball falls onto the floor.")
    with FakeChatServer(lambda body: text) as s:
        (reply,), _stats = run(_ask([s.base_url], tmp_path, model=RefineReply, endpoint_kw={"response_format": "none"}))
        assert reply.caption == "A ball falls onto the floor."
        with pytest.raises(ItemDropped) as e:
            run(_ask([s.base_url], tmp_path / "schema", model=RefineReply))
    assert e.value.reason == "invalid_reply" and "no JSON" in e.value.detail


def test_api_key_is_sent_but_never_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SYNTH_KEY", "sk-very-secret")
    caplog.set_level(logging.DEBUG)
    seen = []

    def responder(body):
        seen.append(body)
        return ScriptedReply(status=500)

    with FakeChatServer(responder) as s, pytest.raises(ItemDropped) as e:
        run(_ask([s.base_url], tmp_path, endpoint_kw={"api_key_env": "SYNTH_KEY"}))
    assert "sk-very-secret" not in caplog.text and "sk-very-secret" not in str(e.value)


def test_media_parts_and_file_urls_in_the_cache_key(tmp_path):
    clip = tmp_path / "seg.mp4"
    clip.write_bytes(b"first version")
    part = video_part(clip, "file_url")
    assert part == {"type": "video_url", "video_url": {"url": clip.resolve().as_uri()}}
    inline = video_part(clip, "data_url")["video_url"]["url"]
    assert inline == "data:video/mp4;base64,Zmlyc3QgdmVyc2lvbg=="
    wav = tmp_path / "seg.wav"
    wav.write_bytes(b"RIFF....WAVE")
    assert audio_part(wav) == {"type": "input_audio", "input_audio": {"data": "UklGRi4uLi5XQVZF", "format": "wav"}}
    body = {"model": "m", "messages": [{"role": "user", "content": [part]}]}
    before = cache_key(body)
    clip.write_bytes(b"second version")  # same path, new content: a new key, no stale cache hit
    assert cache_key(body) != before


CAPTION = "A ball falls onto the floor. A bell rings once."


@pytest.mark.parametrize("wrapped", [
    f"```\n{CAPTION}\n```",
    f"Sure! Here is the result:\n{CAPTION}",
    f"Sure! Here is the result…\n```text\n{CAPTION}\n```\nHope it helps!",
    f"Certainly. Here's the caption of the segment.\n{CAPTION}\n\nLet me know if you need anything else.",
    f"Caption: {CAPTION}",
])
def test_plain_text_wrapping_is_stripped(tmp_path, wrapped):
    with FakeChatServer(lambda body: ScriptedReply(wrapped)) as s:
        (reply,), stats = run(_ask([s.base_url], tmp_path, model=CaptionReply, endpoint_kw={"response_format": "none"}))
    assert reply.caption == CAPTION and stats.repair_turns == 0


@pytest.mark.parametrize("chatter", [
    "I'm sorry, I cannot describe this video.",
    "Sure! Here is the result:",
    f"Here are two takes:\n```\n{CAPTION}\n```\n```\nA ball.\n```",
    f"{CAPTION}\n## Notes\nThe sound is faint.",
])
def test_plain_text_that_is_not_a_caption_is_re_asked_then_dropped(tmp_path, chatter):
    with FakeChatServer(lambda body: ScriptedReply(chatter)) as s, pytest.raises(ItemDropped) as e:
        run(_ask([s.base_url], tmp_path, model=CaptionReply, endpoint_kw={"response_format": "none"}))
    assert e.value.reason == "chatter_reply" and "conversation" in e.value.detail
    assert len(s.bodies) == 3 and "could not be used" in s.bodies[-1]["messages"][-1]["content"]


def test_a_refusal_then_a_caption_keeps_the_caption(tmp_path):
    script = Script(ScriptedReply("I'm sorry, I can't help with that."), ScriptedReply(CAPTION))
    with FakeChatServer(script) as s:
        (reply,), stats = run(_ask([s.base_url], tmp_path, model=CaptionReply, endpoint_kw={"response_format": "none"}))
    assert reply.caption == CAPTION and stats.repair_turns == 1


def test_a_caption_that_only_looks_like_prose_is_kept(tmp_path):
    for text in ("Here is a kitchen where a man cooks.", "Sure enough, the ball falls again."):
        with FakeChatServer(lambda body, text=text: ScriptedReply(text)) as s:
            (reply,), _stats = run(_ask([s.base_url], tmp_path / text[:4], model=CaptionReply,
                                        endpoint_kw={"response_format": "none"}))
        assert reply.caption == text
