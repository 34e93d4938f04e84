"""Anthropic Messages client -> chat completions upstream: requests, responses, streams."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest, UpstreamUnavailable
from gateway.translate import (
    MessagesEventsFromChatStream,
    chat_response_to_messages,
    messages_request_to_chat,
)
from tests.unit.gateway.translate._sdk import (
    HAVE_ANTHROPIC,
    accumulate_events,
    check_chat_request,
    check_message,
    check_messages_request,
)

M = "gpt-4o"
PNG = "iVBORw0KGgo="
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


def msgs(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": M, "max_tokens": 100, "messages": list(messages), **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


REQUESTS = [
    pytest.param(
        msgs(user("hi")),
        {"model": M, "messages": [user("hi")], "max_completion_tokens": 100},
        id="text",
    ),
    pytest.param(
        msgs(user("hi"), system=[text("Be brief."), text("Use French.")]),
        {
            "model": M,
            "messages": [{"role": "system", "content": "Be brief.\nUse French."}, user("hi")],
            "max_completion_tokens": 100,
        },
        id="system-blocks",
    ),
    pytest.param(
        msgs(
            user(
                [
                    text("what is this?"),
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                ]
            ),
            system="Be brief.",
        ),
        {
            "model": M,
            "messages": [
                {"role": "system", "content": "Be brief."},
                user(
                    [
                        text("what is this?"),
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                    ]
                ),
            ],
            "max_completion_tokens": 100,
        },
        id="multi-part-images",
    ),
    pytest.param(
        msgs(
            user("weather in Paris?"),
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    text("Checking."),
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "weather",
                        "input": {"city": "Paris"},
                    },
                    {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}},
                ],
            },
            user(
                [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [text("noon"), text("UTC")],
                    },
                    text("thanks"),
                ]
            ),
            tools=[{"name": "weather", "description": "Weather", "input_schema": SCHEMA}],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            stop_sequences=["END"],
            metadata={"user_id": "u-42"},
            temperature=0.3,
            top_p=0.9,
            top_k=5,
            stream=True,
        ),
        {
            "model": M,
            "messages": [
                user("weather in Paris?"),
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "toolu_2",
                            "type": "function",
                            "function": {"name": "time", "arguments": "{}"},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "noon\nUTC"},
                user([text("thanks")]),
            ],
            "max_completion_tokens": 100,
            "temperature": 0.3,
            "top_p": 0.9,
            "stop": ["END"],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "weather", "description": "Weather", "parameters": SCHEMA},
                }
            ],
            "tool_choice": "required",
            "parallel_tool_calls": False,
            "user": "u-42",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        id="tools-tool-results-stream",
    ),
    pytest.param(
        msgs(
            user([{"type": "tool_result", "tool_use_id": "toolu_1"}]),
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
            },
        ),
        {
            "model": M,
            "messages": [
                {"role": "tool", "tool_call_id": "toolu_1", "content": ""},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "t",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
            ],
            "max_completion_tokens": 100,
        },
        id="tool-result-only-turn",
    ),
]


@pytest.mark.parametrize(("body", "expected"), REQUESTS)
def test_request(body: dict[str, Any], expected: dict[str, Any]) -> None:
    sdk_body = {k: v for k, v in body.items() if k not in ("temperature", "top_p", "top_k")}
    check_messages_request(
        sdk_body
    )  # the current SDK has no sampling fields; older clients send them
    out = messages_request_to_chat(body)
    assert out == expected
    check_chat_request(out)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "weather"},
            {"tool_choice": {"type": "function", "function": {"name": "weather"}}},
        ),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        (None, {}),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    body = msgs(user("hi"), tools=[{"name": "weather", "input_schema": SCHEMA}])
    if choice is not None:
        body["tool_choice"] = choice
    out = messages_request_to_chat(body)
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected
    check_chat_request(out)


def test_max_tokens_field_for_older_servers_and_documents() -> None:
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
    }
    plain = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
    }
    out = messages_request_to_chat(msgs(user([pdf, plain])), max_tokens_field="max_tokens")
    assert out["max_tokens"] == 100
    assert out["messages"][0]["content"] == [
        {
            "type": "file",
            "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"},
        },
        text("notes"),
    ]
    check_chat_request(out)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], "body"),
        ({"max_tokens": 1, "messages": [user("hi")]}, "model"),
        (msgs(), "messages"),
        (msgs(user("hi"), max_tokens=0), "max_tokens"),
        (msgs(user("hi"), temperature="warm"), "temperature"),
        (msgs(user("hi"), stop_sequences="END"), "stop_sequences"),
        (msgs(user("hi"), system=5), "system"),
        (msgs(user("hi"), system=[{"type": "image"}]), "system[0]"),
        (
            msgs(user("hi"), tools=[{"type": "web_search_20250305", "name": "web_search"}]),
            "tools[0].type",
        ),
        (msgs(user("hi"), tools=[{"name": "f"}]), "tools[0].input_schema"),
        (
            msgs(
                user("hi"), tools=[{"name": "f", "input_schema": {}}], tool_choice={"type": "tool"}
            ),
            "tool_choice",
        ),
        (msgs(user("hi"), metadata={"user_id": 5}), "metadata.user_id"),
        (msgs(user("hi"), stream="yes"), "stream"),
        (msgs({"role": "tool", "content": "x"}), "messages[0].role"),
        (msgs(user(5)), "messages[0].content"),
        (msgs(user([{"type": "audio"}])), "messages[0].content[0].type"),
        (
            msgs(user([{"type": "image", "source": {"type": "file", "file_id": "f"}}])),
            "messages[0].content[0].source",
        ),
        (
            msgs(
                user([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image"}]}])
            ),
            "messages[0].content[0].content[0]",
        ),
        (msgs(user([{"type": "tool_result"}])), "messages[0].content[0].tool_use_id"),
        (
            msgs(
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}],
                }
            ),
            "messages[0].content[0].input",
        ),
        (
            msgs({"role": "assistant", "content": [{"type": "server_tool_use"}]}),
            "messages[0].content[0].type",
        ),
    ],
)
def test_untranslatable_request_is_invalid_naming_the_field(body: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        messages_request_to_chat(body)
    assert caught.value.param == param


# --------------------------------------------------------------------------- responses


def completion(message: dict[str, Any], finish_reason: str, usage: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": M,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": usage,
    }


USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 30,
    "total_tokens": 1230,
    "prompt_tokens_details": {"cached_tokens": 1024},
}


def test_text_response_with_cached_usage() -> None:
    out = chat_response_to_messages(
        completion({"role": "assistant", "content": "Hello"}, "stop", USAGE)
    )
    check_message(out)
    assert out == {
        "id": "msg_abc123",
        "type": "message",
        "role": "assistant",
        "model": M,
        "content": [text("Hello")],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 176,
            "output_tokens": 30,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1024,
        },
    }


def test_tool_call_response() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "time", "arguments": "{broken"},
            },
        ],
    }
    out = chat_response_to_messages(completion(message, "tool_calls"))
    check_message(out)
    assert out["stop_reason"] == "tool_use"
    assert out["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "time", "input": {}},
    ]
    assert out["usage"]["input_tokens"] == 0  # no usage reported: zeros


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_finish_reason_mapping(finish_reason: Any, stop_reason: str) -> None:
    out = chat_response_to_messages(
        completion({"role": "assistant", "content": "x"}, finish_reason)
    )
    assert out["stop_reason"] == stop_reason
    check_message(out)


def test_refusal_response() -> None:
    out = chat_response_to_messages(
        completion({"role": "assistant", "content": None, "refusal": "I can't help."}, "stop")
    )
    assert (out["content"], out["stop_reason"]) == ([text("I can't help.")], "refusal")
    check_message(out)


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"choices": []},
        completion({"role": "assistant", "content": 5}, "stop"),
        completion({"role": "assistant", "tool_calls": [{"id": "c"}]}, "tool_calls"),
        completion({"role": "assistant", "content": "x"}, "stop", {"prompt_tokens": "many"}),
        {**completion({"role": "assistant", "content": "x"}, "stop"), "id": 7},
        {"error": {"message": "boom"}},
    ],
)
def test_malformed_response_is_upstream_unavailable(body: Any) -> None:
    with pytest.raises(UpstreamUnavailable):
        chat_response_to_messages(body)


# --------------------------------------------------------------------------- streams


def chunk(
    delta: dict[str, Any] | None = None, finish_reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    )
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": M,
        "choices": choices,
        **extra,
    }


def tool_delta(
    index: int, arguments: str, id_: str | None = None, name: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id_:
        call |= {"id": id_, "type": "function"}
        call["function"]["name"] = name
    return {"tool_calls": [call]}


TEXT_CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo"}),
    chunk({}, "stop"),
    chunk(None, usage=USAGE),
]

TOOL_CHUNKS = [
    chunk({"role": "assistant", "content": None}),
    chunk({"content": "Checking."}),
    chunk(tool_delta(0, "", "call_1", "weather")),
    chunk(tool_delta(0, '{"city": ')),
    chunk(tool_delta(0, '"Paris"}')),
    chunk(tool_delta(1, "{}", "call_2", "time")),
    chunk({}, "tool_calls"),
    chunk(None, usage=USAGE),
]


def run(
    chunks: list[dict[str, Any]], finish: bool = True
) -> tuple[MessagesEventsFromChatStream, list[Any]]:
    stream = MessagesEventsFromChatStream()
    events = [event for c in chunks for event in stream.feed(c)]
    if finish:
        events += stream.finish()
    return stream, events


def test_text_stream() -> None:
    stream, events = run(TEXT_CHUNKS)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert events[5][1]["usage"] == {
        "input_tokens": 176,
        "output_tokens": 30,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1024,
    }
    assert stream.usage == events[5][1]["usage"]
    message = accumulate_events(events)
    if HAVE_ANTHROPIC:
        assert message.id == "msg_s1"
        assert [b.text for b in message.content] == ["Hello"]
        assert message.stop_reason == "end_turn"
        assert message.usage.output_tokens == 30
        assert message.usage.cache_read_input_tokens == 1024


def test_tool_call_stream_with_argument_pieces() -> None:
    _, events = run(TOOL_CHUNKS)
    deltas = [p["delta"] for name, p in events if name == "content_block_delta"]
    assert deltas == [
        {"type": "text_delta", "text": "Checking."},
        {"type": "input_json_delta", "partial_json": '{"city": '},
        {"type": "input_json_delta", "partial_json": '"Paris"}'},
        {"type": "input_json_delta", "partial_json": "{}"},
    ]
    starts = [p["content_block"] for name, p in events if name == "content_block_start"]
    assert starts[1] == {"type": "tool_use", "id": "call_1", "name": "weather", "input": {}}
    assert [p["index"] for name, p in events if name == "content_block_stop"] == [0, 1, 2]
    message = accumulate_events(events)
    if HAVE_ANTHROPIC:
        assert message.stop_reason == "tool_use"
        assert [(b.type, getattr(b, "input", None)) for b in message.content] == [
            ("text", None),
            ("tool_use", {"city": "Paris"}),
            ("tool_use", {}),
        ]


def test_finish_closes_a_stream_whose_usage_chunk_never_came() -> None:
    stream, events = run(TEXT_CHUNKS[:-1], finish=False)
    assert events[-1][0] == "content_block_stop"  # message_delta waits for the usage chunk
    closing = stream.finish()
    assert [name for name, _ in closing] == ["message_delta", "message_stop"]
    assert closing[0][1]["usage"] == {"output_tokens": 0}
    assert stream.usage is None
    accumulate_events(events + closing)
    assert stream.finish() == []


def test_usage_in_the_finish_chunk_closes_at_once_and_later_chunks_are_ignored() -> None:
    stream, events = run([TEXT_CHUNKS[1], chunk({}, "length", usage=USAGE)], finish=False)
    assert events[-1][0] == "message_stop"
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert stream.feed(TEXT_CHUNKS[1]) == []
    assert stream.finish() == []


def test_stream_cut_without_finish_reason_ends_turn() -> None:
    _, events = run(TEXT_CHUNKS[:3])
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    accumulate_events(events)


def test_empty_stream_is_upstream_unavailable() -> None:
    with pytest.raises(UpstreamUnavailable):
        MessagesEventsFromChatStream().finish()


@pytest.mark.parametrize(
    "chunks",
    [
        [{"error": {"message": "model overloaded"}}],
        [{"choices": []}],
        ["garbage"],
        [chunk({"content": 5})],
        [
            chunk(tool_delta(0, "{", "c1", "f")),
            chunk(tool_delta(1, "{", "c2", "g")),
            chunk(tool_delta(0, "}")),
        ],
        [chunk({"tool_calls": [{"index": "0"}]})],
        [chunk({}, "stop"), chunk(None, usage={"prompt_tokens": -1})],
    ],
)
def test_malformed_stream_is_upstream_unavailable(chunks: list[Any]) -> None:
    stream = MessagesEventsFromChatStream()
    with pytest.raises(UpstreamUnavailable):
        for c in chunks:
            stream.feed(c)
