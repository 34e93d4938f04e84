"""The response cache through the real gateway and the real mock over HTTP, with the
official openai and anthropic SDKs, every event read back from the broker: a repeat is
answered from the cache (the mock sees one request), streams replay as well-formed
streams of the client's API (chat completions, Messages, Responses), and a hit's event
names the request that filled the entry. Finer cases (TTL, isolation, headers, guardrails,
semantic thresholds) run in process: tests/unit/gateway/cache/test_cache_proxy.py."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.integration.gateway.conftest import RunningGateway

pytestmark = pytest.mark.integration

CLAUDE = "claude-sonnet-4-5"
GPT = "gpt-4o-mini"


def _mock_calls(mock_url: str) -> dict[str, int]:
    stats = httpx.get(f"{mock_url}/mock/stats", timeout=5).json()
    return dict(stats.get("default", {}))


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {p: n - before.get(p, 0) for p, n in after.items() if n != before.get(p, 0)}


def test_repeats_are_answered_from_the_cache_in_every_api(
    start_two_provider_gateway, mock_url, events_for
) -> None:
    gw: RunningGateway = start_two_provider_gateway(gateway={"cache": {"mode": "exact"}})
    key = gw.create_key(team="cache")["key"]
    oa = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=20)
    an = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=20)
    before = _mock_calls(mock_url)
    ids: list[str] = []

    def twice(call: Any) -> tuple[Any, Any]:
        first, second = call(), call()
        for raw in (first, second):
            ids.append(raw.headers["x-request-id"])
        assert first.headers["x-meterline-cache"] == "MISS"
        assert second.headers["x-meterline-cache"] == "HIT"
        return first.parse(), second.parse()

    messages = [{"role": "user", "content": "What does the cache save?"}]
    a, b = twice(lambda: oa.chat.completions.with_raw_response.create(model=GPT, messages=messages))
    assert b.choices[0].message.content == a.choices[0].message.content
    assert b.usage.completion_tokens == a.usage.completion_tokens

    def chat_stream() -> Any:
        return oa.chat.completions.with_raw_response.create(
            model=GPT, messages=messages, stream=True, stream_options={"include_usage": True}
        )

    a, b = twice(chat_stream)
    chunks_a, chunks_b = list(a), list(b)
    text = "".join(c.choices[0].delta.content or "" for c in chunks_b if c.choices)
    assert text and text == "".join(c.choices[0].delta.content or "" for c in chunks_a if c.choices)
    assert chunks_b[-1].usage is not None and chunks_b[-1].usage == chunks_a[-1].usage

    def messages_stream() -> Any:
        return an.messages.with_raw_response.create(
            model=CLAUDE, max_tokens=64, messages=messages, stream=True
        )

    a, b = twice(messages_stream)
    events_a, events_b = list(a), list(b)
    assert [e.type for e in events_b] == [e.type for e in events_a]
    assert events_b[0].type == "message_start" and events_b[-1].type == "message_stop"

    a, b = twice(
        lambda: an.messages.with_raw_response.create(model=CLAUDE, max_tokens=64, messages=messages)
    )
    assert b.content[0].text == a.content[0].text

    def responses_stream() -> Any:
        return oa.responses.with_raw_response.create(model=GPT, input="Cache me", stream=True)

    a, b = twice(responses_stream)
    done_a = [e for e in a if e.type == "response.completed"]
    done_b = [e for e in b if e.type == "response.completed"]
    assert len(done_b) == 1 and done_b[0].response.output_text == done_a[0].response.output_text

    # Each pair reached the mock once (the miss), whatever the API.
    calls = _delta(before, _mock_calls(mock_url))
    assert calls == {"/v1/chat/completions": 2, "/v1/messages": 2, "/v1/responses": 1}

    events = events_for(gw.settings, ids)
    for filled, hit in zip(events[::2], events[1::2], strict=True):
        assert (filled["cache"], hit["cache"]) == ("miss", "hit")
        assert hit["cache_source_event_id"] == filled["event_id"]
        assert (hit["provider"], hit["model_used"]) == (filled["provider"], filled["model_used"])
        assert hit["output_tokens"] == filled["output_tokens"] > 0
