"""Both directions composed: what goes through chat -> Messages -> chat keeps its meaning."""

from __future__ import annotations

import json
from typing import Any

import gateway.translate as translate
from gateway.translate import (
    ChatChunksFromMessagesStream,
    MessagesEventsFromChatStream,
    chat_request_to_messages,
    chat_response_to_messages,
    messages_request_to_chat,
    messages_response_to_chat,
)
from tests.unit.gateway.translate._sdk import (
    HAVE_ANTHROPIC,
    accumulate_events,
    check_chat_request,
    check_message,
)

CONVERSATION = {
    "model": "m",
    "max_completion_tokens": 300,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "and this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "parallel_tool_calls": False,
    "stop": ["END"],
    "user": "u-1",
    "stream": True,
}


def normalise(message: dict[str, Any]) -> dict[str, Any]:
    """Meaning of a chat message: arguments compared as JSON, not as strings."""
    out = dict(message)
    if "tool_calls" in out:
        out["tool_calls"] = [
            c | {"function": c["function"] | {"arguments": json.loads(c["function"]["arguments"])}}
            for c in out["tool_calls"]
        ]
    return out


def test_chat_request_round_trip_keeps_meaning() -> None:
    back = messages_request_to_chat(chat_request_to_messages(CONVERSATION))
    check_chat_request(back)
    assert [normalise(m) for m in back["messages"]] == [
        normalise(m) for m in CONVERSATION["messages"]
    ]
    for field in ("tools", "tool_choice", "parallel_tool_calls", "stop", "user", "stream"):
        assert back[field] == CONVERSATION[field], field
    assert back["max_completion_tokens"] == 300
    assert back["stream_options"] == {"include_usage": True}


def test_messages_response_round_trip_keeps_meaning() -> None:
    message = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 40,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 900,
        },
    }
    back = chat_response_to_messages(messages_response_to_chat(message, created=1))
    check_message(back)
    assert back == message | {"id": "msg_msg_01"}


def test_stream_round_trip_matches_the_upstream_message() -> None:
    """Anthropic events -> chat chunks -> Anthropic events, folded by the anthropic SDK."""
    upstream = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "model": "claude",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 900},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "there"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city":'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ' "Rome"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 40},
        },
        {"type": "message_stop"},
    ]
    to_chat = ChatChunksFromMessagesStream(created=1)
    to_messages = MessagesEventsFromChatStream(model="claude")
    events = []
    for payload in upstream:
        for chunk in to_chat.feed(payload["type"], payload):
            events += to_messages.feed(chunk)
    events += to_messages.finish()
    assert events[-1][0] == "message_stop"
    final = accumulate_events(events)
    if HAVE_ANTHROPIC:
        assert [b.model_dump(exclude_none=True) for b in final.content] == [
            {"type": "text", "text": "Hi there"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Rome"}},
        ]
        assert final.stop_reason == "tool_use"
        assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 40)
        assert final.usage.cache_read_input_tokens == 900
    assert to_chat.usage["cache_read_input_tokens"] == 900
    assert to_messages.usage == {
        "input_tokens": 12,
        "output_tokens": 40,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 900,
    }


def test_exported_members() -> None:
    assert translate.__all__ == [
        "DEFAULT_MAX_TOKENS",
        "ChatChunksFromMessagesStream",
        "MessagesEventsFromChatStream",
        "chat_request_to_messages",
        "chat_response_to_messages",
        "messages_request_to_chat",
        "messages_response_to_chat",
    ]
