"""Every API through the real gateway to the real mock over HTTP, with the official SDKs.

Two providers share the mock (conftest `start_two_provider_gateway`): `mock-anthropic`
(Messages, claude-*) and `mock-openai` (OpenAI's APIs, gpt-*). Each request's client-visible
answer is checked against what the mock predicts (`plan_for` / `usage_for`), and so is its
one RequestEvent: endpoint, provider, deployment, upstream API, model and exact tokens. A
test's topics are its own, so the events on them are exactly its requests' (one key: one
partition, in order).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest

from meterline.mock_provider import input_tokens_for, plan_for, usage_for
from tests.integration.gateway.conftest import (
    CLAUDE_ALIAS,
    CLAUDE_GROUP,
    CLAUDE_GROUP_MODEL,
    RunningGateway,
)

CLAUDE = "claude-sonnet-4-5"
GPT = "gpt-4o-mini"
SYSTEM = "You are a terse assistant for the finance team."
PROMPT = "Summarize the quarterly invoice backlog, please."
USER = [{"role": "user", "content": PROMPT}]
LOOKUP = {
    "name": "lookup",
    "description": "Look an invoice up.",
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
}
CHAT_LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look an invoice up.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}

Gateway = tuple[RunningGateway, str]


@pytest.fixture
def gateway(start_two_provider_gateway) -> Gateway:
    gw = start_two_provider_gateway()
    return gw, gw.create_key(team="apis")["key"]


def _anthropic(gw: RunningGateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=20)


def _openai(gw: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=20)


def _tokens(api: str, body: dict[str, Any]) -> dict[str, int]:
    """The mock's usage for `body` on `api`, as the RequestEvent counts it (input = the
    whole prompt, cache reads and writes included)."""
    usage = usage_for(api, body)  # type: ignore[arg-type]
    if api == "messages":
        read, write = usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]
        return {
            "input_tokens": usage["input_tokens"] + read + write,
            "output_tokens": usage["output_tokens"],
            "cache_read_tokens": read,
            "cache_write_tokens": write,
        }
    if api == "responses":
        return {
            "input_tokens": usage["input_tokens"],
            "output_tokens": usage["output_tokens"],
            "cache_read_tokens": usage["input_tokens_details"]["cached_tokens"],
            "cache_write_tokens": usage["input_tokens_details"]["cache_write_tokens"],
        }
    details = usage.get("prompt_tokens_details") or {}
    return {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
        "cache_read_tokens": details.get("cached_tokens", 0),
        "cache_write_tokens": 0,
    }


def _events(
    read_events: Callable[..., list[dict[str, Any]]], gw: RunningGateway, count: int
) -> list[dict[str, Any]]:
    """The test's events once `count` arrived: exactly `count`, one per request id."""
    events = read_events(gw.settings, lambda evs: len(evs) >= count, 30.0)
    assert len(events) == count, [(e["endpoint"], e["status_code"]) for e in events]
    assert len({e["request_id"] for e in events}) == count
    return events


def _check(
    event: dict[str, Any],
    *,
    endpoint: str,
    provider: str,
    deployment: str,
    upstream_api: str,
    model_used: str,
    tokens: dict[str, int],
    stream: bool = False,
    status: int = 200,
) -> None:
    seen = {name: event[name] for name in tokens}
    assert seen == tokens, event
    assert (
        event["endpoint"],
        event["provider"],
        event["deployment"],
        event["upstream_api"],
        event["model_used"],
        event["stream"],
        event["status_code"],
        event["error_type"],
    ) == (endpoint, provider, deployment, upstream_api, model_used, stream, status, None), event
    assert event["attempts"] == []  # one try: the event keeps no list


def _claude_event(event: dict[str, Any], tokens: dict[str, int], **kw: Any) -> None:
    _check(
        event,
        endpoint="/v1/messages",
        provider="anthropic",
        deployment="mock-anthropic",
        upstream_api="messages",
        model_used=CLAUDE,
        tokens=tokens,
        **kw,
    )


# --- Anthropic Messages, pass-through ---------------------------------------------------


def test_messages_create_and_stream_with_a_system_prompt(gateway: Gateway, read_events) -> None:
    gw, key = gateway
    client = _anthropic(gw, key)
    body = {"model": CLAUDE, "max_tokens": 200, "system": SYSTEM, "messages": USER}
    plan = plan_for("messages", body)
    tokens = _tokens("messages", body)

    message = client.messages.create(**body)
    assert message.type == "message" and message.role == "assistant"
    assert message.model == CLAUDE and message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == plan.text
    assert message.usage.input_tokens == tokens["input_tokens"]
    assert message.usage.output_tokens == tokens["output_tokens"]

    with client.messages.stream(**body) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == plan.text and final.content[0].text == plan.text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == tokens["output_tokens"]
    assert final.usage.input_tokens == tokens["input_tokens"]

    created, streamed_event = _events(read_events, gw, 2)
    _claude_event(created, tokens)
    _claude_event(streamed_event, tokens, stream=True)
    assert created["finish_reason"] == streamed_event["finish_reason"]


def test_messages_tool_use_and_tool_result_round_trip(gateway: Gateway, read_events) -> None:
    gw, key = gateway
    client = _anthropic(gw, key)
    ask = {"model": CLAUDE, "max_tokens": 200, "messages": USER, "tools": [LOOKUP]}
    plan = plan_for("messages", ask)

    message = client.messages.create(**ask)
    assert message.stop_reason == "tool_use"
    [block] = [b for b in message.content if b.type == "tool_use"]
    assert block.name == "lookup" and block.input == json.loads(plan.tool_arguments or "")

    with client.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    [streamed_block] = [b for b in streamed.content if b.type == "tool_use"]
    assert streamed_block.input == block.input and streamed.stop_reason == "tool_use"

    answer = {
        **ask,
        "messages": [
            *USER,
            {"role": "assistant", "content": [b.model_dump() for b in message.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": block.id, "content": "3 invoices late"}
                ],
            },
        ],
        "tool_choice": {"type": "none"},
    }
    final = client.messages.create(**answer)
    assert (
        final.stop_reason == "end_turn"
        and final.content[0].text == plan_for("messages", answer).text
    )

    called, called_streamed, answered = _events(read_events, gw, 3)
    _claude_event(called, _tokens("messages", ask))
    _claude_event(called_streamed, _tokens("messages", ask), stream=True)
    _claude_event(answered, _tokens("messages", answer))
    for event in (called, called_streamed):
        assert [c["name"] for c in event["tool_calls"]] == ["lookup"]
        assert event["finish_reason"] == "tool_use", event


def test_messages_cache_tokens_count_as_cache_read_and_write(gateway: Gateway, read_events) -> None:
    gw, key = gateway
    client = _anthropic(gw, key)
    long_prompt = [{"role": "user", "content": PROMPT * 8}]
    cache = {"mock_cached_tokens": 40, "mock_cache_write_tokens": 25}
    body = {"model": CLAUDE, "max_tokens": 200, "system": SYSTEM, "messages": long_prompt}
    tokens = _tokens("messages", {**body, **cache})
    assert tokens["input_tokens"] > 65 and tokens["cache_read_tokens"] == 40

    message = client.messages.create(**body, extra_body=cache)
    usage = message.usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (40, 25)
    assert usage.input_tokens + 40 + 25 == tokens["input_tokens"]  # Anthropic: uncached only

    with client.messages.stream(**body, extra_body=cache) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == 40
    assert final.usage.cache_creation_input_tokens == 25

    # Through the routing group's alias: its deployment serves its own upstream model.
    aliased = client.messages.create(**{**body, "model": CLAUDE_ALIAS}, extra_body=cache)
    assert aliased.model == CLAUDE_GROUP_MODEL

    created, streamed, grouped = _events(read_events, gw, 3)
    _claude_event(created, tokens)
    _claude_event(streamed, tokens, stream=True)
    _check(
        grouped,
        endpoint="/v1/messages",
        provider="anthropic",
        deployment=f"mock-anthropic/{CLAUDE_GROUP_MODEL}",
        upstream_api="messages",
        model_used=CLAUDE_GROUP_MODEL,
        tokens=_tokens("messages", {**body, **cache, "model": CLAUDE_GROUP_MODEL}),
    )
    assert grouped["model_requested"] == CLAUDE_ALIAS


def test_count_tokens_answers_and_records_no_request(gateway: Gateway, read_events) -> None:
    gw, key = gateway
    client = _anthropic(gw, key)
    body = {"model": CLAUDE, "system": SYSTEM, "messages": USER}
    counted = client.messages.count_tokens(**body)
    assert counted.input_tokens == input_tokens_for("messages", body)
    # Nothing was generated or billed: the next request's event is the topic's only one.
    client.messages.create(**body, max_tokens=20)
    [event] = _events(read_events, gw, 1)
    assert event["endpoint"] == "/v1/messages"


# --- OpenAI Responses and legacy completions, pass-through -------------------------------


def test_responses_create_and_stream_with_cached_and_reasoning_tokens(
    gateway: Gateway, read_events
) -> None:
    gw, key = gateway
    client = _openai(gw, key)
    body = {"model": GPT, "instructions": SYSTEM, "input": PROMPT * 4}
    steer = {"mock_cached_tokens": 16, "mock_reasoning_tokens": 9}
    plan = plan_for("responses", {**body, **steer})
    tokens = _tokens("responses", {**body, **steer})

    response = client.responses.create(
        **body, previous_response_id="resp_earlier_turn", extra_body=steer
    )
    assert response.status == "completed" and response.output_text == plan.text
    assert response.previous_response_id == "resp_earlier_turn"  # echoed by the mock
    usage = response.usage
    assert usage is not None and usage.input_tokens == tokens["input_tokens"]
    assert usage.input_tokens_details.cached_tokens == 16
    assert usage.output_tokens_details.reasoning_tokens == 9
    assert usage.output_tokens == tokens["output_tokens"]

    with client.responses.stream(**body, extra_body=steer) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == plan.text and final.output_text == plan.text
    assert final.usage is not None and final.usage.input_tokens_details.cached_tokens == 16
    assert final.usage.output_tokens_details.reasoning_tokens == 9

    for event, stream_flag in zip(_events(read_events, gw, 2), (False, True), strict=True):
        _check(
            event,
            endpoint="/v1/responses",
            provider="openai",
            deployment="mock-openai",
            upstream_api="responses",
            model_used=GPT,
            tokens=tokens,
            stream=stream_flag,
        )
        assert event["reasoning_tokens"] == 9


def test_legacy_completions_create_and_stream(gateway: Gateway, read_events) -> None:
    gw, key = gateway
    client = _openai(gw, key)
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": PROMPT, "max_tokens": 100}
    plan = plan_for("completions", body)
    tokens = _tokens("completions", body)

    completion = client.completions.create(**body)
    assert completion.object == "text_completion"
    assert completion.choices[0].text == plan.text
    assert completion.usage is not None and completion.usage.prompt_tokens == tokens["input_tokens"]

    chunks = list(client.completions.create(**body, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plan.text
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage

    with_usage = list(
        client.completions.create(**body, stream=True, stream_options={"include_usage": True})
    )
    assert with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == tokens["output_tokens"]

    for event, stream_flag in zip(_events(read_events, gw, 3), (False, True, True), strict=True):
        _check(
            event,
            endpoint="/v1/completions",
            provider="openai",
            deployment="mock-openai",
            upstream_api="completions",
            model_used=body["model"],
            tokens=tokens,
            stream=stream_flag,
        )


# --- Cross-API translation ---------------------------------------------------------------


def test_chat_completions_for_a_claude_model_go_to_messages(gateway: Gateway, read_events) -> None:
    gw, key = gateway
    client = _openai(gw, key)
    messages = [{"role": "system", "content": SYSTEM}, *USER]
    body = {"model": CLAUDE, "messages": messages, "max_tokens": 200}
    plan = plan_for("chat", body)
    tokens = _tokens("chat", body)

    completion = client.chat.completions.create(**body)
    assert completion.object == "chat.completion" and completion.model == CLAUDE
    assert completion.choices[0].message.content == plan.text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == tokens["input_tokens"]
    assert completion.usage.completion_tokens == tokens["output_tokens"]

    chunks = list(
        client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plan.text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == tokens["input_tokens"]
    assert chunks[-1].usage.completion_tokens == tokens["output_tokens"]

    tooled = {**body, "tools": [CHAT_LOOKUP]}
    called = client.chat.completions.create(**tooled)
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == json.loads(
        plan_for("chat", tooled).tool_arguments or ""
    )

    streamed_calls = list(client.chat.completions.create(**tooled, stream=True))
    arguments = "".join(
        tc.function.arguments or ""
        for c in streamed_calls
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function
    )
    assert json.loads(arguments) == json.loads(call.function.arguments)
    assert all(c.usage is None for c in streamed_calls)  # no include_usage: no usage chunk
    assert [c.choices[0].finish_reason for c in streamed_calls if c.choices][-1] == "tool_calls"

    events = _events(read_events, gw, 4)
    for event, (sent, stream_flag) in zip(
        events, [(body, False), (body, True), (tooled, False), (tooled, True)], strict=True
    ):
        _check(
            event,
            endpoint="/v1/chat/completions",
            provider="anthropic",
            deployment="mock-anthropic",
            upstream_api="messages",
            model_used=CLAUDE,
            tokens=_tokens("chat", sent),
            stream=stream_flag,
        )
    assert [c["name"] for c in events[2]["tool_calls"]] == ["lookup"]
    assert [c["name"] for c in events[3]["tool_calls"]] == ["lookup"]


def test_messages_for_a_gpt_model_go_to_chat_completions(gateway: Gateway, read_events) -> None:
    gw, key = gateway
    client = _anthropic(gw, key)
    body = {"model": GPT, "max_tokens": 200, "system": SYSTEM, "messages": USER}
    plan = plan_for("messages", body)
    tokens = _tokens("messages", body)

    message = client.messages.create(**body)
    assert message.model == GPT and message.stop_reason == "end_turn"
    assert message.content[0].text == plan.text
    assert message.usage.input_tokens == tokens["input_tokens"]
    assert message.usage.output_tokens == tokens["output_tokens"]

    with client.messages.stream(**body) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == plan.text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == tokens["output_tokens"]

    tooled = {**body, "tools": [LOOKUP]}
    called = client.messages.create(**tooled)
    [block] = [b for b in called.content if b.type == "tool_use"]
    assert called.stop_reason == "tool_use" and block.name == "lookup"

    events = _events(read_events, gw, 3)
    for event, (sent, stream_flag) in zip(
        events, [(body, False), (body, True), (tooled, False)], strict=True
    ):
        _check(
            event,
            endpoint="/v1/messages",
            provider="openai",
            deployment="mock-openai",
            upstream_api="chat",
            model_used=GPT,
            tokens=_tokens("messages", sent),
            stream=stream_flag,
        )


# --- /v1/models ----------------------------------------------------------------------------


def test_models_list_shows_what_the_key_may_use_with_both_sdks(gateway: Gateway) -> None:
    gw, key = gateway
    every = {CLAUDE_GROUP, CLAUDE_ALIAS}  # providers list only patterns: not listed
    assert {m.id for m in _openai(gw, key).models.list()} == every
    assert {m.id for m in _anthropic(gw, key).models.list()} == every
    narrow = gw.create_key(team="apis", models=[CLAUDE_ALIAS, "gpt-*"])["key"]
    assert [m.id for m in _openai(gw, narrow).models.list()] == [CLAUDE_ALIAS]
    assert [m.id for m in _anthropic(gw, narrow).models.list()] == [CLAUDE_ALIAS]


# --- errors --------------------------------------------------------------------------------


def test_messages_errors_are_in_anthropics_shape(gateway: Gateway, read_events) -> None:
    gw, key = gateway
    with pytest.raises(anthropic.AuthenticationError) as bad_key:
        _anthropic(gw, "ml-not-a-key").messages.create(model=CLAUDE, max_tokens=5, messages=USER)
    assert bad_key.value.status_code == 401
    assert bad_key.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid API key"},
    }

    missing = httpx.post(
        f"{gw.url}/v1/messages",
        json={"model": CLAUDE, "messages": USER},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=20,
    )
    assert missing.status_code == 400, missing.text
    error = missing.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in error["error"]["message"]

    with pytest.raises(openai.BadRequestError) as wrong_api:
        _openai(gw, key).responses.create(model=CLAUDE, input=PROMPT)
    assert wrong_api.value.status_code == 400
    assert "/v1/responses" in wrong_api.value.message and CLAUDE in wrong_api.value.message

    events = _events(read_events, gw, 3)
    by_status = sorted((e["endpoint"], e["status_code"], e["key_id"] is None) for e in events)
    assert by_status == [
        ("/v1/messages", 400, False),
        ("/v1/messages", 401, True),
        ("/v1/responses", 400, False),
    ]
    assert all(e["input_tokens"] == 0 and e["deployment"] is None for e in events)


HUGE = "x" * 3_000_000
BAD_BODIES: list[tuple[str, bytes | dict[str, Any]]] = [
    ("empty", b""),
    ("not json", b"{not json"),
    ("a list", b"[1, 2]"),
    ("empty object", {}),
    ("model a number", {"model": 7, "max_tokens": 5, "messages": USER, "input": "hi"}),
    (
        "wrong types",
        {
            "model": CLAUDE,
            "max_tokens": "ten",
            "messages": "hi",
            "input": 5,
            "prompt": {"a": 1},
            "stream": "yes",
        },
    ),
    ("messages of numbers", {"model": CLAUDE, "max_tokens": 5, "messages": [1, 2]}),
    ("huge model name", {"model": "gpt-" + HUGE[:200_000], "max_tokens": 5, "messages": USER}),
    (
        "huge prompt",
        {
            "model": CLAUDE,
            "max_tokens": 5,
            "messages": [{"role": "user", "content": HUGE}],
            "input": HUGE,
            "prompt": HUGE,
        },
    ),
    ("too big", b'{"model": "' + b"y" * 5_000_000 + b'"}'),
]
ENDPOINTS = [
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/responses",
    "/v1/completions",
    "/v1/chat/completions",
]


def test_no_input_gets_a_500(gateway: Gateway, read_events) -> None:
    gw, key = gateway
    headers = {"x-api-key": key, "content-type": "application/json"}
    answered = 0
    with httpx.Client(base_url=gw.url, headers=headers, timeout=30) as http:
        for endpoint in ENDPOINTS:
            for name, body in BAD_BODIES:
                if isinstance(body, dict):
                    response = http.post(endpoint, json=body)
                else:
                    response = http.post(endpoint, content=body)
                assert response.status_code < 500, (endpoint, name, response.text[:300])
                if response.status_code >= 400:
                    error = response.json()
                    assert "error" in error, (endpoint, name, error)
                    if endpoint.startswith("/v1/messages"):
                        assert error["type"] == "error", (endpoint, name, error)
                answered += endpoint != "/v1/messages/count_tokens"
    events = _events(read_events, gw, answered)  # one each; count_tokens records none
    assert all(e["status_code"] < 500 for e in events)
