from __future__ import annotations

import hashlib

import orjson
import pytest

from gateway.apis import CHAT, EMBEDDINGS, prompt_stats
from gateway.apis.chat import ChatStreamReader
from gateway.errors import InvalidRequest
from schemas.tool_arguments import tool_arguments_hash


def test_parse_chat_reads_the_fields_the_gateway_needs() -> None:
    raw = orjson.dumps(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "max_tokens": 5,
            "stream_options": {"include_usage": True},
        }
    )
    parsed = CHAT.parse(raw)
    assert (parsed.model, parsed.stream, parsed.max_tokens, parsed.client_wants_usage) == (
        "m",
        True,
        5,
        True,
    )


M = '"messages": [{"role": "user", "content": "hi"}]'


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"", None),
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user"}]}', "model"),
        (b'{"model": "", "messages": [{}]}', "model"),
        (b'{"model": 7, "messages": [{}]}', "model"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"model": "m", "messages": "hi"}', "messages"),
        (b'{"model": "m", "messages": [1]}', "messages[0]"),
        (b'{"model": "m", "messages": [{}]}', "messages[0].role"),
        (b'{"model": "m", "messages": [{"role": 7, "content": "x"}]}', "messages[0].role"),
        (b'{"model": "m", "messages": [{"role": {}, "content": "x"}]}', "messages[0].role"),
        (b'{"model": "m", "messages": [{"role": "user"}]}', "messages[0].content"),
        (b'{"model": "m", "messages": [{"role": "user", "content": null}]}', "messages[0].content"),
        (b'{"model": "m", "messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"model": "m", "messages": [{"role": "user", "content": {}}]}', "messages[0].content"),
        (b'{"model": "m", "messages": [{"role": "user", "content": []}]}', "messages[0].content"),
        (
            b'{"model": "m", "messages": [{"role": "assistant", "content": null}]}',
            "messages[0].content",
        ),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": [1]}]}',
            "messages[0].content[0]",
        ),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": [{}]}]}',
            "messages[0].content[0].type",
        ),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}',
            "messages[0].content[0].text",
        ),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": '
            b'[{"type": "text", "text": 1}]}]}',
            "messages[0].content[0].text",
        ),
        (b'{"model": "m", %s, "stream": "yes"}' % M.encode(), "stream"),
        (b'{"model": "m", %s, "max_tokens": "5"}' % M.encode(), "max_tokens"),
        (b'{"model": "m", %s, "max_tokens": -1}' % M.encode(), "max_tokens"),
        (b'{"model": "m", %s, "max_tokens": 0}' % M.encode(), "max_tokens"),
        (b'{"model": "m", %s, "max_tokens": 1.5}' % M.encode(), "max_tokens"),
        (b'{"model": "m", %s, "max_tokens": true}' % M.encode(), "max_tokens"),
        (b'{"model": "m", %s, "max_tokens": 18446744073709551615}' % M.encode(), "max_tokens"),
        (b'{"model": "m", %s, "max_completion_tokens": 0}' % M.encode(), "max_completion_tokens"),
        (b'{"model": "m", %s, "n": 0}' % M.encode(), "n"),
        (b'{"model": "m", %s, "n": 129}' % M.encode(), "n"),
        (b'{"model": "m", %s, "n": "2"}' % M.encode(), "n"),
        (b'{"model": "m", %s, "user": {"id": 1}}' % M.encode(), "user"),
        (b'{"model": "m", %s, "user": 7}' % M.encode(), "user"),
        (b'{"model": "m", %s, "stream_options": 3}' % M.encode(), "stream_options"),
    ],
)
def test_parse_chat_names_the_bad_field(body: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        CHAT.parse(body)
    assert caught.value.param == param
    assert caught.value.status == 400
    if param:
        assert param in caught.value.message


def test_a_model_name_longer_than_openai_allows_is_refused_with_its_length() -> None:
    parsed = CHAT.parse(b'{"model": "%s", %s}' % (b"m" * 256, M.encode()))
    assert len(parsed.model) == 256
    for parse, rest in ((CHAT.parse, M), (EMBEDDINGS.parse, '"input": "x"')):
        with pytest.raises(InvalidRequest) as caught:
            parse(b'{"model": "%s", %s}' % (b"m" * 257, rest.encode()))
        assert caught.value.param == "model"
        assert caught.value.code == "string_above_max_length"
        assert "maximum length 256" in caught.value.message and "257" in caught.value.message


def test_errors_use_openai_codes_and_wording() -> None:
    with pytest.raises(InvalidRequest) as caught:
        CHAT.parse(b'{"model": "m", "messages": [{"role": 1, "content": "x"}]}')
    assert caught.value.code == "invalid_type"
    assert caught.value.message == (
        "Invalid type for 'messages[0].role': expected a string, but got an integer instead."
    )
    with pytest.raises(InvalidRequest) as caught:
        CHAT.parse(b'{"model": "m", %s, "max_tokens": 0}' % M.encode())
    assert caught.value.code == "integer_below_min_value"
    with pytest.raises(InvalidRequest) as caught:
        CHAT.parse(b'{"model": "m", "messages": [{"role": "user"}]}')
    assert caught.value.code == "missing_required_parameter"


def test_assistant_messages_may_omit_content_when_they_call_tools() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    for message in (
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "assistant", "content": [{"type": "text", "text": "x"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
    ):
        body = {"model": "m", "messages": [{"role": "user", "content": "q"}, message]}
        assert CHAT.parse(orjson.dumps(body)).model == "m"


def test_valid_limits_are_kept() -> None:
    raw = b'{"model": "m", %s, "max_completion_tokens": 1, "n": 128, "user": "u"}' % M.encode()
    assert CHAT.parse(raw).max_tokens == 1
    assert EMBEDDINGS.parse(b'{"model": "e", "input": "x", "user": "u"}').model == "e"
    with pytest.raises(InvalidRequest) as caught:
        EMBEDDINGS.parse(b'{"model": "e", "input": "x", "user": ["u"]}')
    assert caught.value.param == "user"


def test_prompt_stats_hashes_and_counts_text_only() -> None:
    messages = [
        {"role": "user", "content": "abcd"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "xy"}, {"type": "image_url", "image_url": {}}],
        },
    ]
    digest, chars = prompt_stats(CHAT, {"messages": messages})
    assert digest == hashlib.sha256(orjson.dumps(messages)).hexdigest()
    assert chars == 6
    assert prompt_stats(EMBEDDINGS, {"input": ["ab", "c"]})[1] == 3


def test_summarize_response_reads_usage_details_and_tool_calls() -> None:
    summary = CHAT.summarize(
        {
            "model": "gpt-x-2024",
            "choices": [
                {
                    "finish_reason": "tool_calls",
                    "message": {
                        "content": "hello",
                        "tool_calls": [{"function": {"name": "search", "arguments": '{"q":1}'}}],
                    },
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 6},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        }
    )
    assert (
        summary.model_used,
        summary.input_tokens,
        summary.output_tokens,
        summary.cache_read_tokens,
        summary.reasoning_tokens,
        summary.response_chars,
        summary.finish_reason,
    ) == ("gpt-x-2024", 10, 4, 6, 2, 5, "tool_calls")
    assert summary.tool_calls == [
        {"name": "search", "arguments_hash": tool_arguments_hash('{"q":1}')}
    ]


def test_summarize_response_survives_garbage() -> None:
    for odd in (None, [], "x", {"choices": "x", "usage": [1]}, {"choices": [1, {"message": 2}]}):
        summary = CHAT.summarize(odd)
        assert summary.input_tokens == 0 and summary.tool_calls == []


def test_stream_accumulator_flags_the_usage_only_chunk() -> None:
    acc = ChatStreamReader(hide_usage=True)
    assert (
        acc.feed(
            None, {"model": "m1", "choices": [{"delta": {"role": "assistant", "content": ""}}]}
        )
        is False
    )
    assert acc.feed(None, {"choices": [{"delta": {"content": "abc"}}]}) is False
    assert (
        acc.feed(
            None,
            {
                "choices": [
                    {
                        "delta": {
                            "tool_calls": [
                                {"index": 0, "function": {"name": "f", "arguments": '{"a"'}}
                            ]
                        }
                    }
                ]
            },
        )
        is False
    )
    assert (
        acc.feed(
            None,
            {
                "choices": [
                    {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}
                ]
            },
        )
        is False
    )
    assert acc.feed(None, {"choices": [{"delta": {}, "finish_reason": "stop"}]}) is False
    assert (
        acc.feed(None, {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
        is True
    )
    summary = acc.finish()
    assert (
        summary.model_used,
        summary.response_chars,
        summary.finish_reason,
        summary.input_tokens,
        summary.output_tokens,
    ) == ("m1", 3, "stop", 3, 1)
    assert summary.tool_calls == [{"name": "f", "arguments_hash": tool_arguments_hash('{"a":1}')}]
