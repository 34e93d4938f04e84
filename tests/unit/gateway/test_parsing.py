from __future__ import annotations

import hashlib

import orjson
import pytest

from gateway.errors import InvalidRequest
from gateway.parsing import parse_chat, parse_embeddings, prompt_stats


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
    parsed = parse_chat(raw)
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
        parse_chat(body)
    assert caught.value.param == param
    assert caught.value.status == 400
    if param:
        assert param in caught.value.message


def test_a_model_name_longer_than_openai_allows_is_refused_with_its_length() -> None:
    parsed = parse_chat(b'{"model": "%s", %s}' % (b"m" * 256, M.encode()))
    assert len(parsed.model) == 256
    for parse, rest in ((parse_chat, M), (parse_embeddings, '"input": "x"')):
        with pytest.raises(InvalidRequest) as caught:
            parse(b'{"model": "%s", %s}' % (b"m" * 257, rest.encode()))
        assert caught.value.param == "model"
        assert caught.value.code == "string_above_max_length"
        assert "maximum length 256" in caught.value.message and "257" in caught.value.message


def test_errors_use_openai_codes_and_wording() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat(b'{"model": "m", "messages": [{"role": 1, "content": "x"}]}')
    assert caught.value.code == "invalid_type"
    assert caught.value.message == (
        "Invalid type for 'messages[0].role': expected a string, but got an integer instead."
    )
    with pytest.raises(InvalidRequest) as caught:
        parse_chat(b'{"model": "m", %s, "max_tokens": 0}' % M.encode())
    assert caught.value.code == "integer_below_min_value"
    with pytest.raises(InvalidRequest) as caught:
        parse_chat(b'{"model": "m", "messages": [{"role": "user"}]}')
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
        assert parse_chat(orjson.dumps(body)).model == "m"


def test_valid_limits_are_kept() -> None:
    raw = b'{"model": "m", %s, "max_completion_tokens": 1, "n": 128, "user": "u"}' % M.encode()
    assert parse_chat(raw).max_tokens == 1
    assert parse_embeddings(b'{"model": "e", "input": "x", "user": "u"}').model == "e"
    with pytest.raises(InvalidRequest) as caught:
        parse_embeddings(b'{"model": "e", "input": "x", "user": ["u"]}')
    assert caught.value.param == "user"


def test_parse_embeddings_accepts_strings_and_token_arrays() -> None:
    assert parse_embeddings(b'{"model": "e", "input": "x"}').model == "e"
    assert parse_embeddings(b'{"model": "e", "input": [[1, 2], [3]]}').stream is False
    for bad in (
        b'{"model": "e"}',
        b'{"model": "e", "input": []}',
        b'{"model": "e", "input": [true]}',
        b'{"model": "e", "input": {"a": 1}}',
    ):
        with pytest.raises(InvalidRequest) as caught:
            parse_embeddings(bad)
        assert caught.value.param == "input"


def test_prompt_stats_hashes_and_counts_text_only() -> None:
    messages = [
        {"role": "user", "content": "abcd"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "xy"}, {"type": "image_url", "image_url": {}}],
        },
    ]
    digest, chars = prompt_stats({"messages": messages}, "messages")
    assert digest == hashlib.sha256(orjson.dumps(messages)).hexdigest()
    assert chars == 6
    assert prompt_stats({"input": ["ab", "c"]}, "input")[1] == 3
