"""chat completions client -> Anthropic Messages upstream: requests, responses, streams."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest, UpstreamUnavailable
from gateway.translate import (
    DEFAULT_MAX_TOKENS,
    ChatChunksFromMessagesStream,
    chat_request_to_messages,
    messages_response_to_chat,
)
from tests.unit.gateway.translate._sdk import (
    HAVE_ANTHROPIC,
    accumulate_chunks,
    check_chat_completion,
    check_chat_request,
    check_messages_request,
)

M = "claude-sonnet-4-5"
PNG = "iVBORw0KGgo="


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": M, "messages": list(messages), **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def call(id_: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

REQUESTS = [
    pytest.param(
        chat(user("hi")),
        {"model": M, "messages": [user("hi")], "max_tokens": DEFAULT_MAX_TOKENS},
        id="text",
    ),
    pytest.param(
        chat(
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            user("hi"),
        ),
        {
            "model": M,
            "system": [
                {"type": "text", "text": "Be brief."},
                {"type": "text", "text": "Use French."},
            ],
            "messages": [user("hi")],
            "max_tokens": DEFAULT_MAX_TOKENS,
        },
        id="system-and-developer",
    ),
    pytest.param(
        chat({"role": "system", "content": "Be brief."}, user("hi"), max_tokens=10),
        {"model": M, "system": "Be brief.", "messages": [user("hi")], "max_tokens": 10},
        id="single-system-string",
    ),
    pytest.param(
        chat(
            user(
                [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://x.test/a.jpg", "detail": "low"},
                    },
                ]
            ),
            max_completion_tokens=50,
            max_tokens=10,
        ),
        {
            "model": M,
            "messages": [
                user(
                    [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                    ]
                )
            ],
            "max_tokens": 50,
        },
        id="multi-part-images",
    ),
    pytest.param(
        chat(
            user("weather in Paris and Rome?"),
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    call("call_1", "weather", '{"city": "Paris"}'),
                    call("call_2", "weather", "{not json"),
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "rain"}],
            },
            user("thanks"),
            tools=[WEATHER_TOOL],
            tool_choice="required",
            parallel_tool_calls=False,
        ),
        {
            "model": M,
            "messages": [
                user("weather in Paris and Rome?"),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "call_1",
                            "name": "weather",
                            "input": {"city": "Paris"},
                        },
                        {"type": "tool_use", "id": "call_2", "name": "weather", "input": {}},
                    ],
                },
                user(
                    [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_2",
                            "content": [{"type": "text", "text": "rain"}],
                        },
                        {"type": "text", "text": "thanks"},
                    ]
                ),
            ],
            "max_tokens": DEFAULT_MAX_TOKENS,
            "tools": [
                {
                    "name": "weather",
                    "input_schema": WEATHER_TOOL["function"]["parameters"],
                    "description": "Weather in a city",
                }
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        },
        id="tools-tool-results-merged",
    ),
    pytest.param(
        chat(
            user("a"), user([{"type": "text", "text": "b"}]), {"role": "assistant", "content": ""}
        ),
        {
            "model": M,
            "messages": [user([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])],
            "max_tokens": DEFAULT_MAX_TOKENS,
        },
        id="same-role-merged-empty-assistant-dropped",
    ),
    pytest.param(
        chat(
            user("hi"),
            temperature=1.7,
            top_p=0.9,
            stop="END",
            user="u-42",
            stream=True,
            stream_options={"include_usage": True},
            seed=7,
            presence_penalty=0.5,
            n=1,
        ),
        {
            "model": M,
            "messages": [user("hi")],
            "max_tokens": DEFAULT_MAX_TOKENS,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-42"},
            "stream": True,
        },
        id="stop-user-stream-dropped-hints-and-sampling",
    ),
    pytest.param(
        chat(user("hi"), stop=["a", "b"], tools=[WEATHER_TOOL]),
        {
            "model": M,
            "messages": [user("hi")],
            "max_tokens": DEFAULT_MAX_TOKENS,
            "stop_sequences": ["a", "b"],
            "tools": [
                {
                    "name": "weather",
                    "input_schema": WEATHER_TOOL["function"]["parameters"],
                    "description": "Weather in a city",
                }
            ],
        },
        id="stop-list-tools-without-choice",
    ),
]


@pytest.mark.parametrize(("body", "expected"), REQUESTS)
def test_request(body: dict[str, Any], expected: dict[str, Any]) -> None:
    check_chat_request(body)
    out = chat_request_to_messages(body)
    assert out == expected
    check_messages_request(out)


def test_keep_sampling_sends_temperature_clamped_and_top_p() -> None:
    body = chat(user("hi"), temperature=1.7, top_p=0.9)
    out = chat_request_to_messages(body, keep_sampling=True)
    assert (out["temperature"], out["top_p"]) == (1, 0.9)
    check_messages_request({k: v for k, v in out.items() if k not in ("temperature", "top_p")})
    assert (
        chat_request_to_messages(chat(user("hi"), temperature=0.2), keep_sampling=True)[
            "temperature"
        ]
        == 0.2
    )


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "weather"}},
            None,
            {"type": "tool", "name": "weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (None, None, None),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    body = chat(user("hi"), tools=[WEATHER_TOOL])
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    out = chat_request_to_messages(body)
    assert out.get("tool_choice") == expected
    check_messages_request(out)


def test_tool_without_parameters_gets_an_empty_object_schema() -> None:
    tool = {"type": "function", "function": {"name": "now"}}
    out = chat_request_to_messages(chat(user("time?"), tools=[tool]))
    assert out["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(user("hi"), n=2), "n"),
        (chat(user("hi"), logprobs=True), "logprobs"),
        (chat(user("hi"), top_logprobs=3), "top_logprobs"),
        (chat(user("hi"), response_format={"type": "json_object"}), "response_format"),
        (chat(user("hi"), modalities=["text", "audio"]), "modalities"),
        (chat(user("hi"), functions=[{"name": "f"}]), "functions"),
        (chat(user("hi"), max_tokens=0), "max_tokens"),
        (chat(user("hi"), temperature="hot"), "temperature"),
        (chat(user("hi"), temperature=-1), "temperature"),
        (chat(user("hi"), top_p=True), "top_p"),
        (chat(user("hi"), stop=[1]), "stop"),
        (chat(user("hi"), tool_choice="sometimes", tools=[WEATHER_TOOL]), "tool_choice"),
        (chat(user("hi"), tools=[{"type": "custom", "custom": {"name": "x"}}]), "tools[0].type"),
        (chat(user("hi"), tools="weather"), "tools"),
        (chat(user("hi"), user=5), "user"),
        ({"model": M, "messages": []}, "messages"),
        ({"model": M}, "messages"),
        (chat({"role": "system", "content": "only system"}), "messages"),
        (chat({"role": "wizard", "content": "x"}), "messages[0].role"),
        (chat({"role": "function", "name": "f", "content": "x"}), "messages[0].role"),
        (chat("not a message"), "messages[0]"),
        (
            chat(user([{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}])),
            "messages[0].content[0].type",
        ),
        (
            chat(user([{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA=="}}])),
            "messages[0].content[0].image_url.url",
        ),
        (
            chat(user([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}])),
            "messages[0].content[0].image_url.url",
        ),
        (
            chat(user([{"type": "file", "file": {"file_id": "file-1"}}])),
            "messages[0].content[0].file.file_data",
        ),
        (chat(user(None)), "messages[0].content"),
        (
            chat({"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}),
            "messages[0].tool_calls[0]",
        ),
        (chat({"role": "tool", "content": "x"}), "messages[0].tool_call_id"),
        (chat({"role": "system", "content": [{"type": "image_url"}]}), "messages[0].content[0]"),
        ([], "body"),
        ({"messages": [user("hi")]}, "model"),
    ],
)
def test_untranslatable_request_is_invalid_naming_the_field(body: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat_request_to_messages(body)
    assert caught.value.param == param
    assert caught.value.status == 400


def test_pdf_file_becomes_a_document_block() -> None:
    part = {
        "type": "file",
        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
    }
    out = chat_request_to_messages(chat(user([part])))
    source = {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}
    assert out["messages"][0]["content"] == [{"type": "document", "source": source}]
    check_messages_request(out)


# --------------------------------------------------------------------------- responses


def anthropic_message(
    content: list[dict[str, Any]], stop_reason: str, **usage: int
) -> dict[str, Any]:
    return {
        "id": "msg_01abc",
        "type": "message",
        "role": "assistant",
        "model": M,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5} | usage,
    }


def test_text_response() -> None:
    message = anthropic_message(
        [{"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}], "end_turn"
    )
    out = messages_response_to_chat(message, created=1700000000)
    completion = check_chat_completion(out)
    assert completion.id == "msg_01abc"
    assert completion.model == M
    assert completion.created == 1700000000
    assert completion.choices[0].message.content == "Hello world"
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
    assert out["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_tool_use_response_with_cache_usage() -> None:
    message = anthropic_message(
        [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
        "tool_use",
        cache_creation_input_tokens=100,
        cache_read_input_tokens=1000,
    )
    out = messages_response_to_chat(message, created=1)
    completion = check_chat_completion(out)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [tool_call] = choice.message.tool_calls
    assert tool_call.id == "toolu_1"
    assert tool_call.function.name == "weather"
    assert tool_call.function.arguments == '{"city":"Paris"}'
    assert out["usage"] == {
        "prompt_tokens": 1110,
        "completion_tokens": 5,
        "total_tokens": 1115,
        "prompt_tokens_details": {"cached_tokens": 1000},
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        (None, "stop"),
    ],
)
def test_stop_reason_mapping(stop_reason: str | None, finish_reason: str) -> None:
    out = messages_response_to_chat(anthropic_message([], stop_reason), created=1)  # type: ignore[arg-type]
    assert out["choices"][0]["finish_reason"] == finish_reason
    check_chat_completion(out)


@pytest.mark.parametrize(
    "message",
    [
        None,
        "text",
        {},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        anthropic_message("not a list", "end_turn"),  # type: ignore[arg-type]
        anthropic_message([{"type": "text"}], "end_turn"),
        anthropic_message([{"type": "text", "text": 5}], "end_turn"),
        anthropic_message([{"type": "tool_use", "id": "t", "name": "n", "input": "x"}], "tool_use"),
        anthropic_message([], "end_turn", input_tokens=-1),
        {**anthropic_message([], "end_turn"), "usage": None},
        {**anthropic_message([], "end_turn"), "id": None},
    ],
)
def test_malformed_response_is_upstream_unavailable(message: Any) -> None:
    with pytest.raises(UpstreamUnavailable, match="malformed"):
        messages_response_to_chat(message, created=1)


# --------------------------------------------------------------------------- streams


def message_start(**usage: int) -> tuple[str, dict[str, Any]]:
    message = anthropic_message([], None, **usage)  # type: ignore[arg-type]
    message["usage"]["output_tokens"] = 1
    return "message_start", {"type": "message_start", "message": message}


def ev(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


TEXT_EVENTS = [
    message_start(cache_read_input_tokens=30, cache_creation_input_tokens=7),
    ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    ("ping", {"type": "ping"}),
    ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hel"}),
    ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "lo"}),
    ev("content_block_stop", index=0),
    ev(
        "message_delta",
        delta={"stop_reason": "end_turn", "stop_sequence": None},
        usage={"output_tokens": 12},
    ),
    ev("message_stop"),
]

TOOL_EVENTS = [
    message_start(),
    ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "Let me check."}),
    ev("content_block_stop", index=0),
    ev(
        "content_block_start",
        index=1,
        content_block={"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
    ),
    ev("content_block_delta", index=1, delta={"type": "input_json_delta", "partial_json": ""}),
    ev(
        "content_block_delta",
        index=1,
        delta={"type": "input_json_delta", "partial_json": '{"city": '},
    ),
    ev(
        "content_block_delta",
        index=1,
        delta={"type": "input_json_delta", "partial_json": '"Paris"}'},
    ),
    ev("content_block_stop", index=1),
    ev(
        "content_block_start",
        index=2,
        content_block={"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}},
    ),
    ev("content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": "{}"}),
    ev("content_block_stop", index=2),
    ev(
        "message_delta",
        delta={"stop_reason": "tool_use", "stop_sequence": None},
        usage={"output_tokens": 40},
    ),
    ev("message_stop"),
]


def run(
    events: list[tuple[str, dict[str, Any]]], **kwargs: Any
) -> tuple[ChatChunksFromMessagesStream, list[dict[str, Any]]]:
    stream = ChatChunksFromMessagesStream(created=1700000000, **kwargs)
    chunks = [chunk for name, payload in events for chunk in stream.feed(name, payload)]
    return stream, chunks


def test_text_stream() -> None:
    stream, chunks = run(TEXT_EVENTS)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["Hel", "lo"]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 47,
        "completion_tokens": 12,
        "total_tokens": 59,
        "prompt_tokens_details": {"cached_tokens": 30},
    }
    assert len(chunks) == 5
    assert {c["id"] for c in chunks} == {"msg_01abc"}
    completion = accumulate_chunks(chunks)
    assert completion.choices[0].message.content == "Hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 59
    assert stream.done
    assert stream.usage == {
        "input_tokens": 10,
        "output_tokens": 12,
        "cache_creation_input_tokens": 7,
        "cache_read_input_tokens": 30,
    }


def test_tool_call_stream_with_argument_pieces() -> None:
    stream, chunks = run(TOOL_EVENTS, include_usage=False)
    tool_deltas = [
        c["choices"][0]["delta"]["tool_calls"]
        for c in chunks
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert tool_deltas[0] == [
        {
            "index": 0,
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "weather", "arguments": ""},
        }
    ]
    assert tool_deltas[1] == [{"index": 0, "function": {"arguments": '{"city": '}}]
    assert tool_deltas[3][0]["index"] == 1
    assert all(c["choices"] for c in chunks)  # include_usage=False: no usage chunk
    completion = accumulate_chunks(chunks)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    assert [(t.id, t.function.name, t.function.arguments) for t in choice.message.tool_calls] == [
        ("toolu_1", "weather", '{"city": "Paris"}'),
        ("toolu_2", "time", "{}"),
    ]
    assert stream.usage["output_tokens"] == 40
    assert stream.finish_reason == "tool_calls"


def test_stream_ignores_thinking_unknown_events_and_events_after_stop() -> None:
    events = [
        TEXT_EVENTS[0],
        ev("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
        ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hmm"}),
        ev("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "s"}),
        ev("content_block_stop", index=0),
        ev("brand_new_event", data=1),
        *TEXT_EVENTS[1:],
        ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "late"}),
    ]
    _, chunks = run(events)
    assert accumulate_chunks(chunks).choices[0].message.content == "Hello"


def test_event_name_is_used_when_the_payload_has_no_type() -> None:
    stream = ChatChunksFromMessagesStream(created=1)
    name, payload = message_start()
    assert stream.feed(name, payload)
    assert stream.feed(
        "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "x"}}
    )


def test_error_event_raises_upstream_unavailable_with_its_message() -> None:
    stream = ChatChunksFromMessagesStream(created=1)
    stream.feed(*message_start())
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(UpstreamUnavailable, match="Overloaded"):
        stream.feed("error", error)


@pytest.mark.parametrize(
    "events",
    [
        [TEXT_EVENTS[1]],  # content before message_start
        [message_start(), message_start()],
        [ev("message_start", message={"id": 1})],
        [
            message_start(),
            ev(
                "content_block_delta",
                index=0,
                delta={"type": "input_json_delta", "partial_json": "{"},
            ),
        ],
        [
            message_start(),
            ev("content_block_delta", index=0, delta={"type": "text_delta", "text": None}),
        ],
        [message_start(), ev("content_block_start", index=0, content_block={"type": "tool_use"})],
        [
            message_start(),
            ev("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": "x"}),
        ],
        [message_start(), ev("message_delta", delta=None)],
        [message_start(), ("content_block_delta", "garbage")],
        [("error", {"type": "error"})],
    ],
)
def test_malformed_stream_is_upstream_unavailable(events: list[tuple[str, Any]]) -> None:
    stream = ChatChunksFromMessagesStream(created=1)
    with pytest.raises(UpstreamUnavailable, match="malformed"):
        for name, payload in events:
            stream.feed(name, payload)


def test_stream_without_stop_reason_still_finishes() -> None:
    events = [e for e in TEXT_EVENTS if e[0] != "message_delta"]
    _, chunks = run(events)
    assert accumulate_chunks(chunks).choices[0].finish_reason == "stop"


def test_sdk_available() -> None:
    if not HAVE_ANTHROPIC:
        pytest.skip("the anthropic SDK is not installed: Messages shape checks are skipped")
