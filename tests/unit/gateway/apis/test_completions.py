"""CompletionsDialect (legacy OpenAI completions)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from openai.types import Completion

from gateway.apis import COMPLETIONS, prompt_stats
from gateway.errors import InvalidRequest, RateLimited
from gateway.sse import encode_done, encode_event, parse_event, parse_json


@pytest.mark.parametrize("prompt", ["Say this", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_prompts_of_every_shape_parse(prompt: Any) -> None:
    parsed = COMPLETIONS.parse(
        orjson.dumps({"model": "gpt-3.5-turbo-instruct", "prompt": prompt, "max_tokens": 7})
    )
    assert (parsed.model, parsed.max_tokens, parsed.stream) == ("gpt-3.5-turbo-instruct", 7, False)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": 3}, "prompt"),
        ({"model": "m", "prompt": []}, "prompt"),
        ({"model": "m", "prompt": ["a", 1]}, "prompt[0]"),
        ({"model": "m", "prompt": [[1], [True]]}, "prompt[1]"),
        ({"model": "m", "prompt": [2**40]}, "prompt[0]"),
        ({"model": "m", "prompt": "x", "max_tokens": -1}, "max_tokens"),
        ({"model": "m", "prompt": "x", "n": 500}, "n"),
        ({"model": "m", "prompt": "x", "stream": "y"}, "stream"),
        ({"model": "m", "prompt": "x", "stream_options": 1}, "stream_options"),
        ({"model": "m", "prompt": "x", "suffix": 1}, "suffix"),
        ({"model": "m", "prompt": "x", "echo": "yes"}, "echo"),
    ],
)
def test_parse_names_the_bad_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        COMPLETIONS.parse(orjson.dumps(body))
    assert caught.value.param == param


ANSWER = {
    "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
    "object": "text_completion",
    "created": 1589478378,
    "model": "gpt-3.5-turbo-instruct",
    "system_fingerprint": "fp_44709d6fcb",
    "choices": [
        {
            "text": "\n\nThis is indeed a test",
            "index": 0,
            "logprobs": None,
            "finish_reason": "length",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}


def test_summary_slots_and_stats() -> None:
    Completion.model_validate(ANSWER)
    summary = COMPLETIONS.summarize(ANSWER)
    assert (
        summary.model_used,
        summary.input_tokens,
        summary.output_tokens,
        summary.finish_reason,
        summary.response_chars,
    ) == (
        "gpt-3.5-turbo-instruct",
        5,
        7,
        "length",
        23,
    )
    assert [c[k] for c, k, _ in COMPLETIONS.output_slots(ANSWER)] == ["\n\nThis is indeed a test"]
    body = {"model": "m", "prompt": ["ab", "c"]}
    assert [(c[k], u) for c, k, u in COMPLETIONS.input_slots(body)] == [("ab", True), ("c", True)]
    assert prompt_stats(COMPLETIONS, body) == (hashlib.sha256(b'["ab","c"]').hexdigest(), 3)
    assert COMPLETIONS.input_slots({"prompt": [1, 2]}) == []
    assert COMPLETIONS.summarize("x").has_usage is False


def _chunk(text: str | None, finish: str | None = None) -> dict[str, Any]:
    choice = {"text": text or "", "index": 0, "logprobs": None, "finish_reason": finish}
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [choice],
    }


def test_stream_asks_for_usage_and_hides_it() -> None:
    parsed = COMPLETIONS.parse(b'{"model": "m", "prompt": "x", "stream": true}')
    body = orjson.loads(COMPLETIONS.stream_body(parsed, b"raw"))
    assert body["stream_options"] == {"include_usage": True}
    reader = COMPLETIONS.stream_reader(parsed)
    events = [_chunk("Hel"), _chunk("lo", "stop")]
    assert [reader.feed(None, e) for e in events] == [False, False] and reader.started
    usage = {"id": "cmpl-1", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2}}
    assert reader.feed(None, usage) is True
    summary = reader.finish()
    assert (summary.response_chars, summary.finish_reason, summary.input_tokens) == (5, "stop", 2)
    asked = COMPLETIONS.parse(
        b'{"model": "m", "prompt": "x", "stream": true, "stream_options": {"include_usage": true}}'
    )
    assert COMPLETIONS.stream_body(asked, b"raw") == b"raw"
    assert COMPLETIONS.stream_reader(asked).feed(None, usage) is False


def test_stream_texts_and_text_event_round_trip() -> None:
    pieces = COMPLETIONS.stream_texts(None, _chunk("Hi"))
    assert [(p.index, p.container[p.key], p.finished) for p in pieces] == [(0, "Hi", False)]
    name, data = parse_event(COMPLETIONS.text_event(0, "held", _chunk("x")))
    payload = parse_json(data)
    assert name is None and payload["choices"][0]["text"] == "held" and payload["id"] == "cmpl-1"
    assert (
        COMPLETIONS.stream_texts(None, None) == []
        and parse_json(parse_event(encode_done())[1]) is None
    )
    assert encode_event(payload) == COMPLETIONS.text_event(0, "held", _chunk("x"))


def test_errors_are_openai_shaped() -> None:
    error = RateLimited("slow")
    assert orjson.loads(COMPLETIONS.error_body(error))["error"]["message"] == "slow"
    assert COMPLETIONS.stream_error(error) == b"data: " + error.render() + b"\n\n"
