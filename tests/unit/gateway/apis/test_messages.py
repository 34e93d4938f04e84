"""MessagesDialect (Anthropic Messages): parse, summary, stream reader, guardrail text, errors."""

from __future__ import annotations

import hashlib
from typing import Any

import anthropic.types as at
import orjson
import pytest
from pydantic import TypeAdapter

from gateway.apis import MESSAGES, ParsedRequest, prompt_stats
from gateway.errors import (
    AuthenticationFailed,
    BodyTooLarge,
    GatewayError,
    InvalidRequest,
    ModelNotAllowed,
    ModelNotFound,
    RateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.sse import encode_event, parse_event, parse_json
from schemas.tool_arguments import tool_arguments_hash

OK = {"model": "claude-sonnet-4-5", "max_tokens": 1024}
USER = [{"role": "user", "content": "Hello, Claude"}]


def _raw(**fields: Any) -> bytes:
    return orjson.dumps({**OK, "messages": USER, **fields})


def test_parse_reads_model_limit_and_stream() -> None:
    parsed = MESSAGES.parse(_raw(stream=True, system=[{"type": "text", "text": "Be brief."}]))
    assert (parsed.model, parsed.max_tokens, parsed.stream) == ("claude-sonnet-4-5", 1024, True)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER, "max_tokens": 1}, "model"),
        ({"model": "m" * 257, "messages": USER, "max_tokens": 1}, "model"),
        ({"model": "c", "messages": USER}, "max_tokens"),
        ({"model": "c", "messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"model": "c", "messages": USER, "max_tokens": 2**40}, "max_tokens"),
        ({"model": "c", "messages": USER, "max_tokens": "9"}, "max_tokens"),
        ({**OK}, "messages"),
        ({**OK, "messages": []}, "messages"),
        ({**OK, "messages": {"role": "user"}}, "messages"),
        ({**OK, "messages": [1]}, "messages.0"),
        ({**OK, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({**OK, "messages": [{"role": "user"}]}, "messages.0.content"),
        ({**OK, "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({**OK, "messages": [{"role": "user", "content": [7]}]}, "messages.0.content.0"),
        (
            {**OK, "messages": [{"role": "user", "content": [{"text": "x"}]}]},
            "messages.0.content.0.type",
        ),
        (
            {**OK, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text",
        ),
        (
            {**OK, "messages": [{"role": "user", "content": [{"type": "image"}]}]},
            "messages.0.content.0.source",
        ),
        (
            {
                **OK,
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}],
                    }
                ],
            },
            "messages.0.content.0.input",
        ),
        (
            {
                **OK,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": 3}],
                    }
                ],
            },
            "messages.0.content.0.content",
        ),
        (
            {
                **OK,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [{"type": "text", "text": 1}],
                            }
                        ],
                    }
                ],
            },
            "messages.0.content.0.content.0.text",
        ),
        ({**OK, "messages": USER, "system": 3}, "system"),
        ({**OK, "messages": USER, "system": [{"type": "image"}]}, "system.0.type"),
        ({**OK, "messages": USER, "stream": "yes"}, "stream"),
        ({**OK, "messages": USER, "tools": {}}, "tools"),
        ({**OK, "messages": USER, "tools": [{"input_schema": {}}]}, "tools.0.name"),
    ],
)
def test_parse_names_the_bad_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        MESSAGES.parse(orjson.dumps(body))
    assert caught.value.param == param and caught.value.status == 400


@pytest.mark.parametrize("raw", [b"", b"[]", b"{", b"null", b'"x"'])
def test_non_objects_are_invalid_requests(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        MESSAGES.parse(raw)


def test_valid_blocks_of_every_kind_parse() -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "42"}]},
        {"type": "thinking", "thinking": "hm", "signature": "s"},
    ]
    messages = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "calc", "input": {"x": 1}}],
        },
        {"role": "user", "content": content},
    ]
    body = {
        **OK,
        "system": "sys",
        "messages": messages,
        "tools": [{"name": "calc", "input_schema": {"type": "object"}}],
    }
    parsed = MESSAGES.parse(orjson.dumps(body))
    slots = MESSAGES.input_slots(parsed.body)
    assert [(c[k], u) for c, k, u in slots] == [
        ("sys", False),
        ("q", True),
        ("look", True),
        ("doc", True),
        ("42", True),
    ]
    digest, chars = prompt_stats(MESSAGES, parsed.body)
    expected = hashlib.sha256(orjson.dumps("sys") + orjson.dumps(messages)).hexdigest()
    assert digest == expected and chars == len("sysqlookdoc42")


MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "text", "text": "Let me check."},
        {
            "type": "tool_use",
            "id": "toolu_01",
            "name": "get_weather",
            "input": {"location": "Paris"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 100,
        "output_tokens": 40,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 300,
    },
}


def test_summarize_a_message_with_cache_and_tool_use() -> None:
    at.Message.model_validate(MESSAGE)  # the example is a well-formed Messages response
    summary = MESSAGES.summarize(MESSAGE)
    assert (
        summary.model_used,
        summary.input_tokens,
        summary.output_tokens,
        summary.cache_write_tokens,
        summary.cache_read_tokens,
        summary.finish_reason,
        summary.response_chars,
    ) == ("claude-sonnet-4-5-20250929", 420, 40, 20, 300, "tool_use", 13)
    assert summary.tool_calls == [
        {
            "name": "get_weather",
            "arguments_hash": tool_arguments_hash('{"location":"Paris"}'),
        }
    ]
    assert [c[k] for c, k, _ in MESSAGES.output_slots(MESSAGE)] == ["Let me check."]


@pytest.mark.parametrize(
    "odd", [None, [], "x", {"content": "x", "usage": [1]}, {"content": [1, {"type": "tool_use"}]}]
)
def test_summarize_survives_garbage(odd: Any) -> None:
    summary = MESSAGES.summarize(odd)
    assert summary.input_tokens == 0 and summary.response_chars == 0
    assert MESSAGES.output_slots(odd) == []


def _stream() -> list[bytes]:
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-sonnet-4-5",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 25,
                        "output_tokens": 1,
                        "cache_read_input_tokens": 5,
                        "cache_creation_input_tokens": 0,
                    },
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hello"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "!"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"location": '},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 15},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    adapter = TypeAdapter(at.RawMessageStreamEvent)
    for name, payload in events:
        if name != "ping":  # the examples are well-formed stream events
            adapter.validate_python(payload)
    return [encode_event(payload, name) for name, payload in events]


def test_stream_reader_reads_usage_text_and_tool_calls() -> None:
    reader = MESSAGES.stream_reader(ParsedRequest(body={}, model="c", stream=True))
    started = []
    for event in _stream():
        name, data = parse_event(event)
        assert reader.feed(name, parse_json(data)) is False
        started.append(reader.started)
    summary = reader.finish()
    assert started.index(True) == 3  # the first text delta
    assert (
        summary.model_used,
        summary.input_tokens,
        summary.cache_read_tokens,
        summary.output_tokens,
    ) == (
        "claude-sonnet-4-5",
        30,
        5,
        15,
    )
    assert (summary.finish_reason, summary.response_chars) == ("tool_use", 6)
    assert (
        summary.tool_calls
        == MESSAGES.summarize(
            {
                "content": [
                    {"type": "tool_use", "name": "get_weather", "input": {"location": "Paris"}}
                ]
            }
        ).tool_calls
    )


def test_stream_texts_and_text_event_round_trip() -> None:
    texts = []
    for event in _stream():
        name, data = parse_event(event)
        texts += [
            (p.index, p.container[p.key] if p.container else None, p.finished)
            for p in MESSAGES.stream_texts(name, parse_json(data))
        ]
    assert texts == [(0, "Hello", False), (0, "!", False), (0, None, True), (1, None, True)]
    name, data = parse_event(MESSAGES.text_event(2, "held", None))
    piece = MESSAGES.stream_texts(name, parse_json(data))[0]
    assert (name, piece.index, piece.container[piece.key]) == ("content_block_delta", 2, "held")
    at.RawContentBlockDeltaEvent.model_validate(parse_json(data))


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequest("bad", param="model"), 400, "invalid_request_error"),
        (BodyTooLarge("big"), 413, "request_too_large"),
        (AuthenticationFailed("who"), 401, "authentication_error"),
        (ModelNotAllowed("no"), 403, "permission_error"),
        (ModelNotFound("none"), 404, "not_found_error"),
        (RateLimited("slow"), 429, "rate_limit_error"),
        (UpstreamUnavailable("down"), 502, "api_error"),
        (UpstreamTimeout("late"), 504, "api_error"),
        (
            UpstreamStatusError(
                529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
            ),
            529,
            "overloaded_error",
        ),
        (UpstreamStatusError(418, b"teapot"), 418, "invalid_request_error"),
    ],
)
def test_errors_are_anthropic_shaped(error: GatewayError, status: int, kind: str) -> None:
    body = orjson.loads(MESSAGES.error_body(error))
    assert error.status == status
    assert body["type"] == "error" and body["error"]["type"] == kind
    assert isinstance(body["error"]["message"], str)
    name, data = parse_event(MESSAGES.stream_error(error))
    assert name == "error" and orjson.loads(data) == body
