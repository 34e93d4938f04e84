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
        (b'{"model": "m", "messages": [{}], "stream": "yes"}', "stream"),
        (b'{"model": "m", "messages": [{}], "max_tokens": "5"}', "max_tokens"),
        (b'{"model": "m", "messages": [{}], "max_tokens": -1}', "max_tokens"),
        (b'{"model": "m", "messages": [{}], "max_tokens": true}', "max_tokens"),
        (b'{"model": "m", "messages": [{}], "stream_options": 3}', "stream_options"),
    ],
)
def test_parse_chat_names_the_bad_field(body: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat(body)
    assert caught.value.param == param
    assert caught.value.status == 400
    if param:
        assert param in caught.value.message


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
