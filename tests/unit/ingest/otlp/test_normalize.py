"""Normalization: OpenInference and GenAI conventions -> SpanEvent; prompts never kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from ingest.otlp.normalize import MAX_ATTRIBUTES, MAX_VALUE_CHARS, normalize_span
from ingest.otlp.spans import RawSpan
from schemas.events.v1 import SpanEvent
from schemas.ids import deterministic_id
from schemas.tool_arguments import tool_arguments_hash

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
START = 1_700_000_000_123_456_789
PROMPT = "SECRET-PROMPT: the launch code is 0000"
ANSWER = "SECRET-ANSWER: noted"


def raw(
    attributes: dict[str, Any], resource: dict[str, Any] | None = None, **fields: Any
) -> RawSpan:
    values: dict[str, Any] = {
        "trace_id": TRACE,
        "span_id": SPAN,
        "parent_span_id": None,
        "name": "ChatCompletion",
        "kind": 1,
        "start_ns": START,
        "end_ns": START + 1_500_000_000,
        "status_code": 1,
        "status_message": "",
        "attributes": attributes,
        "resource": {"service.name": "shop"} if resource is None else resource,
        "scope_name": "openinference.instrumentation.openai",
    }
    values.update(fields)
    return RawSpan(**values)


OPENINFERENCE = {
    "openinference.span.kind": "LLM",
    "llm.model_name": "gpt-4o-mini-2024-07-18",
    "llm.provider": "openai",
    "llm.system": "openai",
    "llm.token_count.prompt": 1200,
    "llm.token_count.completion": 80,
    "llm.token_count.total": 1280,
    "llm.token_count.prompt_details.cache_read": 1024,
    "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 256, '
    '"tools": [{"type": "function"}]}',
    "session.id": "sess-42",
    "user.id": "ana",
    "input.value": PROMPT,
    "input.mime_type": "application/json",
    "output.value": ANSWER,
    "llm.input_messages.0.message.role": "user",
    "llm.input_messages.0.message.content": PROMPT,
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"city": "Oslo"}',
    "meterline.team": "search",
}

GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-sonnet-4",
    "gen_ai.response.model": "claude-sonnet-4-20250514",
    "gen_ai.usage.input_tokens": 300,
    "gen_ai.usage.output_tokens": 40,
    "gen_ai.usage.cache_read_input_tokens": 100,
    "gen_ai.response.finish_reasons": ["stop", "length"],
    "gen_ai.prompt.0.content": PROMPT,
    "gen_ai.completion.0.content": ANSWER,
    "gen_ai.input.messages": [{"role": "user", "parts": [{"content": PROMPT}]}],
    "server.address": "api.anthropic.com",
}


def test_openinference_llm_span() -> None:
    event = normalize_span(raw(OPENINFERENCE, {"service.name": "shop", "meterline.org": "acme"}))

    assert event.kind == "LLM" and event.operation is None
    assert event.model == "gpt-4o-mini-2024-07-18" and event.provider == "openai"
    assert (event.input_tokens, event.output_tokens) == (1200, 80)
    assert (event.cache_read_tokens, event.cache_write_tokens) == (1024, 0)
    assert (event.session_id, event.user, event.service_name) == ("sess-42", "ana", "shop")
    assert (event.org, event.team, event.project, event.key_id) == ("acme", "search", "", None)
    assert event.status == "ok" and event.duration_ms == 1500.0
    assert event.start_ts == datetime.fromtimestamp(1_700_000_000.123, UTC)
    assert event.ts == event.end_ts and event.source == "ingest.otlp"
    # The tool the model called comes from the (dropped) output messages, arguments hashed.
    assert event.tool_name == "get_weather"
    assert event.tool_arguments_hash == tool_arguments_hash('{"city": "Oslo"}')
    assert event.attributes["llm.invocation_parameters.temperature"] == "0.2"
    assert event.attributes["llm.invocation_parameters.max_tokens"] == "256"
    assert event.attributes["llm.token_count.total"] == "1280"
    assert event.attributes["input.mime_type"] == "application/json"
    assert event.attributes["otel.span.kind"] == "INTERNAL"
    assert event.attributes["otel.scope.name"] == "openinference.instrumentation.openai"


def test_genai_span() -> None:
    event = normalize_span(raw(GENAI, kind=3))

    assert event.kind == "LLM" and event.operation == "chat"
    assert event.model == "claude-sonnet-4-20250514"  # the model that answered
    assert event.provider == "anthropic"
    assert (event.input_tokens, event.output_tokens, event.cache_read_tokens) == (300, 40, 100)
    assert event.finish_reasons == ["stop", "length"]
    assert event.attributes["server.address"] == "api.anthropic.com"
    assert event.attributes["otel.span.kind"] == "CLIENT"


def test_legacy_genai_system_and_embeddings() -> None:
    event = normalize_span(
        raw(
            {
                "gen_ai.operation.name": "embeddings",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "text-embedding-3-small",
                "gen_ai.usage.prompt_tokens": "12",
            }
        )
    )
    assert (event.kind, event.provider, event.model) == (
        "EMBEDDING",
        "openai",
        "text-embedding-3-small",
    )
    assert event.input_tokens == 12


@pytest.mark.parametrize("attributes", [OPENINFERENCE, GENAI])
def test_prompt_and_completion_contents_are_dropped_keeping_lengths(
    attributes: dict[str, Any],
) -> None:
    event = normalize_span(raw(attributes))

    wire = event.to_json().decode()
    assert "SECRET" not in wire
    dropped = ("input.value", "output.value", "llm.input_messages", "gen_ai.prompt", "gen_ai.input")
    assert not [
        key for key in event.attributes if key.startswith(dropped) and not key.endswith(".chars")
    ]
    if attributes is OPENINFERENCE:
        assert event.attributes["input.value.chars"] == str(len(PROMPT))
        assert event.attributes["output.value.chars"] == str(len(ANSWER))
        # role "user" + the prompt
        assert event.attributes["llm.input_messages.chars"] == str(len(PROMPT) + 4)
    else:
        assert event.attributes["gen_ai.prompt.chars"] == str(len(PROMPT))
        assert event.attributes["gen_ai.completion.chars"] == str(len(ANSWER))
        assert event.attributes["gen_ai.input.messages.chars"] == str(len(PROMPT) + 4)


def test_tool_span_hashes_arguments() -> None:
    """OpenInference: `input.value` holds a TOOL span's arguments; `tool.parameters` is the
    tool's declared schema, the same on every call, so it never stands for them."""
    arguments = '{"query": "private customer name"}'
    schema = '{"query": {"type": "string"}}'

    def tool_span(value: str) -> SpanEvent:
        return normalize_span(
            raw(
                {
                    "openinference.span.kind": "tool",
                    "tool.name": "search",
                    "tool.parameters": schema,
                    "input.value": value,
                }
            )
        )

    event = tool_span(arguments)
    assert (event.kind, event.tool_name) == ("TOOL", "search")
    assert event.tool_arguments_hash == tool_arguments_hash(arguments)
    assert tool_span('{"query": "another"}').tool_arguments_hash != event.tool_arguments_hash
    assert "private" not in event.to_json().decode()

    call = normalize_span(
        raw({"tool_call.function.name": "lookup", "tool_call.function.arguments": {"id": 7}})
    )
    assert call.tool_name == "lookup" and call.tool_arguments_hash is not None
    assert call.kind == "UNKNOWN"


def test_unknown_attributes_are_kept_as_strings() -> None:
    event = normalize_span(
        raw(
            {
                "http.status_code": 200,
                "retry": True,
                "ratio": 0.5,
                "tags": ["a", "b"],
                "obj": {"k": 1},
                "blob": b"\x01\xff",
                "meterline.source": "sdk",
            },
            {"service.name": "shop", "service.version": "1.2", "meterline.key_id": "key-9"},
            status_code=2,
            status_message="boom",
        )
    )

    assert (
        event.attributes.items()
        >= {
            "http.status_code": "200",
            "retry": "true",
            "ratio": "0.5",
            "tags": '["a","b"]',
            "obj": '{"k":1}',
            "blob": "01ff",
            "meterline.source": "sdk",
            "resource.service.version": "1.2",
            "otel.status.message": "boom",
        }.items()
    )
    assert event.key_id == "key-9" and event.status == "error"
    assert "service.name" not in event.attributes and event.kind == "UNKNOWN"


def test_attribute_sizes_are_capped() -> None:
    many = {f"custom.attr.{i}": "v" * 5000 for i in range(500)}

    event = normalize_span(raw(many))

    assert len(event.attributes) <= MAX_ATTRIBUTES
    assert all(len(value) <= MAX_VALUE_CHARS for value in event.attributes.values())
    assert int(event.attributes["meterline.attributes_dropped"]) > 0


def test_event_id_is_deterministic_from_trace_and_span() -> None:
    first = normalize_span(raw(GENAI))
    again = normalize_span(raw(GENAI))
    other = normalize_span(raw(GENAI, span_id="eee19b7ec3c1b175"))

    assert first.event_id == again.event_id == deterministic_id("span", TRACE, SPAN)
    assert first.to_json() == again.to_json()
    assert other.event_id != first.event_id


def test_cache_tokens_reported_outside_the_prompt_are_added() -> None:
    # Anthropic-style: input excludes cache reads and writes.
    event = normalize_span(
        raw(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.cache_read_input_tokens": 500,
                "gen_ai.usage.cache_creation_input_tokens": 200,
            }
        )
    )
    assert (event.input_tokens, event.cache_read_tokens, event.cache_write_tokens) == (
        710,
        500,
        200,
    )


def test_prompt_tokens_from_total_minus_completion() -> None:
    event = normalize_span(raw({"llm.token_count.total": 100, "llm.token_count.completion": 30}))
    assert (event.input_tokens, event.output_tokens) == (70, 30)


@pytest.mark.parametrize("value", [-1, "many", 1.5, True, 2**70, "²"])
def test_invalid_token_counts_reject_the_span(value: Any) -> None:
    with pytest.raises(
        ValueError, match=r"llm\.token_count\.prompt must be a non-negative integer"
    ):
        normalize_span(raw({"llm.token_count.prompt": value}))


def test_invocation_parameters_that_are_not_json_are_kept_capped() -> None:
    event = normalize_span(raw({"llm.invocation_parameters": "x" * 5000}))
    assert len(event.attributes["llm.invocation_parameters"]) == MAX_VALUE_CHARS
    assert orjson.loads(event.to_json())["span_id"] == SPAN
