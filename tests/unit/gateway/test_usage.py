from __future__ import annotations

import hashlib

from gateway.usage import StreamAccumulator, summarize_response


def test_summarize_response_reads_usage_details_and_tool_calls() -> None:
    summary = summarize_response(
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
        {"name": "search", "arguments_hash": hashlib.sha256(b'{"q":1}').hexdigest()}
    ]


def test_summarize_response_survives_garbage() -> None:
    for odd in (None, [], "x", {"choices": "x", "usage": [1]}, {"choices": [1, {"message": 2}]}):
        summary = summarize_response(odd)
        assert summary.input_tokens == 0 and summary.tool_calls == []


def test_stream_accumulator_flags_the_usage_only_chunk() -> None:
    acc = StreamAccumulator()
    assert (
        acc.feed({"model": "m1", "choices": [{"delta": {"role": "assistant", "content": ""}}]})
        is False
    )
    assert acc.feed({"choices": [{"delta": {"content": "abc"}}]}) is False
    assert (
        acc.feed(
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
            }
        )
        is False
    )
    assert (
        acc.feed(
            {
                "choices": [
                    {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}
                ]
            }
        )
        is False
    )
    assert acc.feed({"choices": [{"delta": {}, "finish_reason": "stop"}]}) is False
    assert acc.feed({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}) is True
    summary = acc.finish()
    assert (
        summary.model_used,
        summary.response_chars,
        summary.finish_reason,
        summary.input_tokens,
        summary.output_tokens,
    ) == ("m1", 3, "stop", 3, 1)
    assert summary.tool_calls == [
        {"name": "f", "arguments_hash": hashlib.sha256(b'{"a":1}').hexdigest()}
    ]
