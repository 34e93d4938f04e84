"""EmbeddingsDialect: parse, prompt slots, summary, no stream."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from gateway.apis import EMBEDDINGS, prompt_stats
from gateway.errors import InvalidRequest, RateLimited


def test_parse_embeddings_accepts_strings_and_token_arrays() -> None:
    assert EMBEDDINGS.parse(b'{"model": "e", "input": "x"}').model == "e"
    assert EMBEDDINGS.parse(b'{"model": "e", "input": [[1, 2], [3]]}').stream is False
    for bad in (
        b'{"model": "e"}',
        b'{"model": "e", "input": []}',
        b'{"model": "e", "input": [true]}',
        b'{"model": "e", "input": {"a": 1}}',
    ):
        with pytest.raises(InvalidRequest) as caught:
            EMBEDDINGS.parse(bad)
        assert caught.value.param == "input"


def test_embeddings_slots_stats_and_summary() -> None:
    body = {"model": "e", "input": ["ab", [1, 2], "c"]}
    assert [c[k] for c, k, _ in EMBEDDINGS.input_slots(body)] == ["ab", "c"]
    digest, chars = prompt_stats(EMBEDDINGS, body)
    assert digest == hashlib.sha256(orjson.dumps(body["input"])).hexdigest() and chars == 3
    answer = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    summary = EMBEDDINGS.summarize(answer)
    assert (summary.model_used, summary.input_tokens, summary.output_tokens) == (
        "text-embedding-3-small",
        8,
        0,
    )
    assert EMBEDDINGS.output_slots(answer) == [] and EMBEDDINGS.streams is False
    assert EMBEDDINGS.summarize([1]).has_usage is False


def test_embeddings_errors_are_openai_shaped() -> None:
    body = orjson.loads(EMBEDDINGS.error_body(RateLimited("slow down")))
    assert body["error"]["type"] and body["error"]["message"] == "slow down"
    with pytest.raises(InvalidRequest):
        EMBEDDINGS.parse(b'{"model": "e", "input": [true]}')
