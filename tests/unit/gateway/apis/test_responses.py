"""ResponsesDialect (OpenAI Responses): parse, summary, stream reader, guardrail text, errors."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from openai.types.responses import Response

from gateway.apis import RESPONSES, ParsedRequest, prompt_stats
from gateway.errors import GuardrailBlocked, InvalidRequest, UpstreamUnavailable
from gateway.sse import encode_event, parse_event, parse_json
from schemas.tool_arguments import tool_arguments_hash

M = {"model": "gpt-4.1"}


def test_parse_accepts_strings_items_and_passes_previous_response_id() -> None:
    body = {
        **M,
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": "weather?"},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Paris"}],
            },
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
        "previous_response_id": "resp_123",
        "max_output_tokens": 500,
        "stream": True,
    }
    parsed = RESPONSES.parse(orjson.dumps(body))
    assert (parsed.model, parsed.stream, parsed.max_tokens) == ("gpt-4.1", True, 500)
    assert parsed.body["previous_response_id"] == "resp_123"
    slots = [(c[k], u) for c, k, u in RESPONSES.input_slots(parsed.body)]
    assert slots == [("Be brief.", False), ("weather?", True), ("Paris", True), ("sunny", True)]
    digest, chars = prompt_stats(RESPONSES, parsed.body)
    expected = orjson.dumps(body["instructions"]) + orjson.dumps(body["input"])
    assert digest == hashlib.sha256(expected).hexdigest() and chars == 27
    assert RESPONSES.parse(b'{"model": "m", "input": "hi"}').max_tokens is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": 3, "input": "x"}, "model"),
        ({**M, "input": 5}, "input"),
        ({**M, "input": [1]}, "input[0]"),
        ({**M, "input": [{"role": "boss", "content": "x"}]}, "input[0].role"),
        ({**M, "input": [{"role": []}]}, "input[0].role"),  # unhashable: once a 502
        ({**M, "input": [{"role": {"a": 1}, "content": "x"}]}, "input[0].role"),
        ({**M, "input": [{"role": "user"}]}, "input[0].content"),
        (
            {**M, "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        ({**M, "input": [{"role": "user", "content": [3]}]}, "input[0].content[0]"),
        (
            {**M, "input": [{"type": "function_call", "call_id": "c", "name": "f"}]},
            "input[0].arguments",
        ),
        ({**M, "input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output"),
        ({**M, "input": [{"type": 7}]}, "input[0].type"),
        ({**M, "input": "x", "instructions": ["x"]}, "instructions"),
        ({**M, "input": "x", "previous_response_id": 1}, "previous_response_id"),
        ({**M, "input": "x", "tools": [{}]}, "tools[0].type"),
        ({**M, "input": "x", "max_output_tokens": 2**31}, "max_output_tokens"),
        ({**M, "input": "x", "max_output_tokens": True}, "max_output_tokens"),
        ({**M, "input": "x", "stream": 1}, "stream"),
    ],
)
def test_parse_names_the_bad_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        RESPONSES.parse(orjson.dumps(body))
    assert caught.value.param == param


RESPONSE: dict[str, Any] = {
    "id": "resp_67ccd2bed1ec8190",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "In a peaceful grove.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"location":"Paris"}',
            "status": "completed",
        },
    ],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "temperature": 1.0,
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "usage": {
        "input_tokens": 36,
        "input_tokens_details": {"cached_tokens": 12, "cache_write_tokens": 4},
        "output_tokens": 87,
        "output_tokens_details": {"reasoning_tokens": 30},
        "total_tokens": 123,
    },
}


def test_summarize_a_response() -> None:
    Response.model_validate(RESPONSE)  # the example is a well-formed Responses answer
    summary = RESPONSES.summarize(RESPONSE)
    assert (
        summary.model_used,
        summary.input_tokens,
        summary.cache_read_tokens,
        summary.cache_write_tokens,
        summary.output_tokens,
        summary.reasoning_tokens,
        summary.finish_reason,
        summary.response_chars,
    ) == ("gpt-4.1-2025-04-14", 36, 12, 4, 87, 30, "completed", 20)
    assert summary.tool_calls == [
        {
            "name": "get_weather",
            "arguments_hash": tool_arguments_hash('{"location":"Paris"}'),
        }
    ]
    assert [c[k] for c, k, _ in RESPONSES.output_slots(RESPONSE)] == ["In a peaceful grove."]
    incomplete = {
        **RESPONSE,
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
    }
    assert RESPONSES.summarize(incomplete).finish_reason == "max_output_tokens"


@pytest.mark.parametrize(
    "odd",
    [None, 1, {"output": "x", "usage": 2}, {"output": [1, {"type": "message", "content": 3}]}],
)
def test_summarize_survives_garbage(odd: Any) -> None:
    assert RESPONSES.summarize(odd).input_tokens == 0 and RESPONSES.output_slots(odd) == []


def _stream() -> list[bytes]:
    created = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
    item = {
        "type": "message",
        "id": "msg_1",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": "",
    }
    events = [
        {"type": "response.created", "response": created, "sequence_number": 0},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": item,
            "sequence_number": 1,
        },
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "In a ",
            "sequence_number": 2,
        },
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "peaceful grove.",
            "sequence_number": 3,
        },
        {
            "type": "response.output_text.done",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "text": "In a peaceful grove.",
            "sequence_number": 4,
        },
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": call,
            "sequence_number": 5,
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1",
            "output_index": 1,
            "delta": '{"location":',
            "sequence_number": 6,
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1",
            "output_index": 1,
            "delta": '"Paris"}',
            "sequence_number": 7,
        },
        {"type": "response.completed", "response": RESPONSE, "sequence_number": 8},
    ]
    return [encode_event(e, e["type"]) for e in events]


def test_stream_reader_reads_text_calls_and_the_final_usage() -> None:
    reader = RESPONSES.stream_reader(ParsedRequest(body={}, model="m", stream=True))
    started = []
    for event in _stream():
        name, data = parse_event(event)
        assert reader.feed(name, parse_json(data)) is False
        started.append(reader.started)
    summary = reader.finish()
    assert started.index(True) == 2
    assert summary == RESPONSES.summarize(RESPONSE)
    # a stream cut before response.completed still counts what it saw
    cut = RESPONSES.stream_reader(ParsedRequest(body={}, model="m"))
    for event in _stream()[:-1]:
        name, data = parse_event(event)
        cut.feed(name, parse_json(data))
    partial = cut.finish()
    assert (partial.response_chars, partial.has_usage) == (20, False)
    assert partial.tool_calls == summary.tool_calls


def test_stream_texts_and_text_event_round_trip() -> None:
    pieces = []
    template = None
    for event in _stream():
        name, data = parse_event(event)
        for piece in RESPONSES.stream_texts(name, parse_json(data)):
            if piece.container is not None:
                template = piece.container
            pieces.append(
                (
                    piece.index,
                    piece.container[piece.key] if piece.container else None,
                    piece.finished,
                )
            )
    assert pieces == [(0, "In a ", False), (0, "peaceful grove.", False), (0, None, True)]
    name, data = parse_event(RESPONSES.text_event(0, "held", template))
    payload = parse_json(data)
    assert name == "response.output_text.delta" and payload["item_id"] == "msg_1"
    assert RESPONSES.stream_texts(name, payload)[0].container["delta"] == "held"


def test_errors() -> None:
    error = UpstreamUnavailable("down")
    assert orjson.loads(RESPONSES.error_body(error))["error"]["message"] == "down"
    name, data = parse_event(
        RESPONSES.stream_error(GuardrailBlocked("no", guardrail="pii", category="email"))
    )
    payload = orjson.loads(data)
    assert name == "error" and payload["type"] == "error" and payload["code"] == "guardrail_blocked"
