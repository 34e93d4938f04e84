"""RawSpan -> SpanEvent: OpenInference and OpenTelemetry GenAI conventions, one shape.

Pure: no I/O. What is understood becomes a typed SpanEvent field; every other attribute is
kept in `attributes` as a string, size-capped. Message contents are never kept (prompts
are stored only on explicit opt-in, which spans cannot express): `input.value`,
`output.value`, `llm.input_messages.*`, `llm.output_messages.*`, `gen_ai.prompt*`,
`gen_ai.completion*` and similar are dropped and only their total length in characters
is kept, as `<group>.chars`. Tool arguments (a TOOL span's `input.value`, GenAI's
`gen_ai.tool.call.arguments`, an LLM span's tool call) are kept only as their
fingerprint (schemas/tool_arguments.py: the gateway's too, so both hash a call alike).

Token convention (the same as processors/cost/logic.py): `input_tokens` is the whole
prompt, cached tokens included. An instrumentation whose cache tokens exceed its input
tokens reported uncached input only (Anthropic style), so the cache tokens are added.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.otlp.spans import RawSpan
from schemas import sources
from schemas.events.v1 import SpanEvent
from schemas.ids import deterministic_id
from schemas.tool_arguments import tool_arguments_hash

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_KEY_CHARS",
    "MAX_VALUE_CHARS",
    "SOURCE",
    "normalize_span",
    "span_event_id",
]

SOURCE = sources.OTLP_INGEST
MAX_ATTRIBUTES = 128
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 1024
_OTEL_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUSES = {1: "ok", 2: "error"}

# Content attributes, by prefix -> the group whose `.chars` total is kept instead.
_CONTENT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("input.value", "input.value"),
    ("output.value", "output.value"),
    ("llm.input_messages", "llm.input_messages"),
    ("llm.output_messages", "llm.output_messages"),
    ("llm.prompts", "llm.prompts"),
    ("llm.prompt_template.variables", "llm.prompt_template.variables"),
    ("llm.prompt_template.template", "llm.prompt_template.template"),
    ("gen_ai.prompt", "gen_ai.prompt"),
    ("gen_ai.completion", "gen_ai.completion"),
    ("gen_ai.input.messages", "gen_ai.input.messages"),
    ("gen_ai.output.messages", "gen_ai.output.messages"),
    ("gen_ai.system_instructions", "gen_ai.system_instructions"),
    ("gen_ai.tool.call.result", "gen_ai.tool.call.result"),
    ("retrieval.documents", "retrieval.documents"),
    ("reranker.input_documents", "reranker.input_documents"),
    ("reranker.output_documents", "reranker.output_documents"),
    ("embedding.embeddings", "embedding.embeddings"),
    ("message.content", "message.content"),
)

# GenAI operation -> OpenInference span kind, for spans that only follow GenAI.
_OPERATION_KINDS = {
    "chat": "LLM",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "embeddings": "EMBEDDING",
    "execute_tool": "TOOL",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
}

# Typed fields, each from the first attribute present (most specific first).
_MODEL = ("gen_ai.response.model", "llm.model_name", "gen_ai.request.model")
_PROVIDER = ("llm.provider", "gen_ai.provider.name", "gen_ai.system", "llm.system")
_INPUT = ("llm.token_count.prompt", "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_OUTPUT = (
    "llm.token_count.completion",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
)
_CACHE_READ = (
    "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.cache_read.input_tokens",
)
_CACHE_WRITE = (
    "llm.token_count.prompt_details.cache_write",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
)
_TOTAL = ("llm.token_count.total", "gen_ai.usage.total_tokens")
_SESSION = ("session.id", "gen_ai.conversation.id")
_USER = ("user.id", "enduser.id")
_TOOL_NAME = ("tool.name", "tool_call.function.name", "gen_ai.tool.name")
# OpenInference's `tool.parameters` is the tool's declared JSON schema, the same on every
# call: a TOOL span's arguments are its `input.value`.
_TOOL_ARGUMENTS = ("tool_call.function.arguments", "gen_ai.tool.call.arguments", "input.value")
_FINISH_REASONS = ("gen_ai.response.finish_reasons", "llm.finish_reason")
_ATTRIBUTION = ("meterline.key_id", "meterline.org", "meterline.team", "meterline.project")
_CONSUMED = frozenset(
    (
        *_MODEL,
        *_PROVIDER,
        *_INPUT,
        *_OUTPUT,
        *_CACHE_READ,
        *_CACHE_WRITE,
        *_SESSION,
        *_USER,
        *_TOOL_NAME,
        *_TOOL_ARGUMENTS,
        *_FINISH_REASONS,
        *_ATTRIBUTION,
        "openinference.span.kind",
        "gen_ai.operation.name",
        "llm.invocation_parameters",
    )
)


def span_event_id(trace_id: str, span_id: str) -> str:
    """The same span always gets the same event id, so re-exports dedupe in ClickHouse."""
    return deterministic_id("span", trace_id, span_id)


def normalize_span(span: RawSpan) -> SpanEvent:
    """Raises ValueError (with a reason for the exporter) when the span cannot be kept."""
    attributes = span.attributes
    # Meterline attribution may be set once on the resource; span attributes win.
    meterline = {k: v for k, v in span.resource.items() if k.startswith("meterline.")}
    merged = {**meterline, **attributes}
    kept: dict[str, str] = {}
    content_chars: dict[str, int] = {}
    for key, value in merged.items():
        group = _content_group(key)
        if group is not None:
            content_chars[group] = content_chars.get(group, 0) + _char_count(value)
        elif key not in _CONSUMED:
            kept[key] = _text(value)
    for group, chars in content_chars.items():
        kept[f"{group}.chars"] = str(chars)
    for key, value in span.resource.items():
        if key != "service.name" and not key.startswith("meterline."):
            kept[f"resource.{key}"] = _text(value)
    kept.update(_invocation_parameters(merged.get("llm.invocation_parameters")))
    if span.scope_name:
        kept["otel.scope.name"] = span.scope_name
    kept["otel.span.kind"] = _OTEL_KINDS[span.kind] if 0 <= span.kind < 6 else str(span.kind)
    if span.status_message:
        kept["otel.status.message"] = span.status_message

    tool_name, tool_arguments = _tool_call(merged)
    model = _first_str(merged, _MODEL) or _invocation_model(merged)
    operation = _first_str(merged, ("gen_ai.operation.name",))
    input_tokens, output_tokens, cache_read, cache_write = _tokens(merged)
    start, end = _timestamp(span.start_ns), _timestamp(span.end_ns)
    return SpanEvent(
        event_id=span_event_id(span.trace_id, span.span_id),
        ts=end,
        source=SOURCE,
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        name=_cap(span.name),
        kind=_span_kind(merged, operation),
        start_ts=start,
        end_ts=end,
        duration_ms=(span.end_ns - span.start_ns) / 1_000_000,
        status=_STATUSES.get(span.status_code, "unset"),  # type: ignore[arg-type]
        service_name=_first_str(span.resource, ("service.name",)),
        key_id=_first_str(merged, ("meterline.key_id",)),
        org=_first_str(merged, ("meterline.org",)) or "",
        team=_first_str(merged, ("meterline.team",)) or "",
        project=_first_str(merged, ("meterline.project",)) or "",
        user=_first_str(merged, _USER),
        session_id=_first_str(merged, _SESSION),
        provider=_first_str(merged, _PROVIDER),
        model=model,
        operation=operation,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        tool_name=tool_name,
        tool_arguments_hash=(
            tool_arguments_hash(tool_arguments) if tool_arguments is not None else None
        ),
        finish_reasons=_finish_reasons(merged),
        attributes=_capped(kept),
    )


# --- kinds, tokens, tools -------------------------------------------------------------


def _span_kind(attributes: dict[str, Any], operation: str | None) -> str:
    explicit = _first_str(attributes, ("openinference.span.kind",))
    if explicit:
        return explicit.upper()
    if operation:
        return _OPERATION_KINDS.get(operation.lower(), "UNKNOWN")
    return "UNKNOWN"


def _tokens(attributes: dict[str, Any]) -> tuple[int, int, int, int]:
    input_tokens = _count(attributes, _INPUT)
    output_tokens = _count(attributes, _OUTPUT) or 0
    cache_read = _count(attributes, _CACHE_READ) or 0
    cache_write = _count(attributes, _CACHE_WRITE) or 0
    total = _count(attributes, _TOTAL)
    if input_tokens is None:
        # Only a total and a completion count: the prompt is the difference.
        input_tokens = max(total - output_tokens, 0) if total is not None else 0
    if cache_read + cache_write > input_tokens:
        input_tokens += cache_read + cache_write
    return input_tokens, output_tokens, cache_read, cache_write


def _count(attributes: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = attributes.get(key)
        if value is None:
            continue
        number = _as_int(value)
        if number is None or number < 0 or number >= 2**63:
            raise ValueError(f"{key} must be a non-negative integer token count")
        return number
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    text = value.strip() if isinstance(value, str) else ""
    if text.isascii() and text.isdigit() and len(text) <= 20:
        return int(text)
    return None


def _tool_call(attributes: dict[str, Any]) -> tuple[str | None, Any]:
    name = _first_str(attributes, _TOOL_NAME)
    arguments = next(
        (attributes[k] for k in _TOOL_ARGUMENTS if attributes.get(k) is not None), None
    )
    if name is not None:
        return _cap(name), arguments
    # An LLM span that asked for a tool carries it inside its (dropped) output messages.
    for key, value in attributes.items():
        if key.startswith("llm.output_messages.") and key.endswith("tool_call.function.name"):
            prefix = key[: -len("name")]
            return _cap(_text(value)), attributes.get(prefix + "arguments")
    return None, None


def _finish_reasons(attributes: dict[str, Any]) -> list[str]:
    value = next((attributes[k] for k in _FINISH_REASONS if attributes.get(k) is not None), None)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_cap(_text(item), 64) for item in items[:16]]


def _invocation_parameters(value: Any) -> dict[str, str]:
    """Scalar parameters (temperature, max_tokens, ...) as `llm.invocation_parameters.<k>`."""
    if value is None:
        return {}
    params = _parsed_json(value)
    if params is None:
        return {"llm.invocation_parameters": _text(value)}
    return {
        f"llm.invocation_parameters.{key}": _text(item)
        for key, item in params.items()
        if isinstance(item, (str, int, float, bool)) and key not in ("messages", "prompt", "input")
    }


def _invocation_model(attributes: dict[str, Any]) -> str | None:
    params = _parsed_json(attributes.get("llm.invocation_parameters"))
    model = params.get("model") if params else None
    return _cap(model) if isinstance(model, str) and model else None


def _parsed_json(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


# --- values ---------------------------------------------------------------------------


def _content_group(key: str) -> str | None:
    for prefix, group in _CONTENT_PREFIXES:
        if key.startswith(prefix):
            return group
    return None


def _char_count(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(_char_count(item) for item in value)
    if isinstance(value, dict):
        return sum(_char_count(item) for item in value.values())
    return 0 if value is None else len(_text(value))


def _first_str(attributes: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return _cap(_text(value), 256)
    return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (int, float)):
        return repr(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


def _cap(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _capped(attributes: dict[str, str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, value in attributes.items():
        if len(result) >= MAX_ATTRIBUTES - 1:
            result["meterline.attributes_dropped"] = str(len(attributes) - len(result))
            break
        result[_cap(key, MAX_KEY_CHARS)] = _cap(value)
    return result


def _timestamp(unix_ns: int) -> datetime:
    # Millisecond precision, the wire format of every Meterline timestamp.
    return datetime.fromtimestamp(unix_ns // 1_000_000 / 1000, tz=UTC)
