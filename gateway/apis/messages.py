"""Anthropic Messages (`POST /v1/messages`).

Parse: `model`, `max_tokens` (required, as Anthropic requires it), `messages` (role user or
assistant; content a string or content blocks), `system` (a string or text blocks),
`stream`, `tools`; errors name the field the way Anthropic does (`messages.0.content`).
Usage: `input_tokens` here is the WHOLE prompt as for OpenAI (Anthropic's uncached
`input_tokens` + `cache_creation_input_tokens` + `cache_read_input_tokens`), the last two
also as cache_write_tokens / cache_read_tokens. A `tool_use` block is a tool call hashed
as sha256 of its compact JSON `input` (streamed `partial_json` is re-serialized the same
way, so streaming and not hash alike). Errors are Anthropic's
`{"type":"error","error":{"type","message"}}`, the type following the status.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.apis.base import Dialect, ParsedRequest, Slot, StreamReader, StreamText
from gateway.apis.validation import (
    MAX_INT,
    as_int,
    int_field,
    load_object,
    model_field,
    stream_flag,
)
from gateway.bounds import MAX_MODEL_CHARS, MAX_TEXT_CHARS, MAX_TOOL_CALLS, clip
from gateway.errors import GatewayError, InvalidRequest
from gateway.sse import encode_event
from gateway.usage import ResponseSummary
from schemas.tool_arguments import tool_arguments_hash

__all__ = ["MESSAGES", "MessagesDialect", "MessagesStreamReader", "anthropic_error_type"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
# Tuples, not sets: `x in` a tuple compares, a set hashes, and a client's list or object
# in a role or type field would raise TypeError there (a 502) instead of failing the check.
_TOOL_BLOCKS = ("tool_use", "server_tool_use")


def anthropic_error_type(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def _required(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"{param}: Field required", param=param, code="missing_required_parameter"
    )


def _invalid(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: Input should be {expected}", param=param, code="invalid_type")


def _str_field(block: dict[str, Any], key: str, where: str) -> None:
    if key not in block:
        raise _required(f"{where}.{key}")
    if not isinstance(block[key], str):
        raise _invalid(f"{where}.{key}", "a valid string")


def _block(block: Any, where: str, nested: bool = False) -> None:
    if not isinstance(block, dict):
        raise _invalid(where, "a valid dictionary")
    kind = block.get("type")
    if kind is None:
        raise _required(f"{where}.type")
    if not isinstance(kind, str):
        raise _invalid(f"{where}.type", "a valid string")
    if kind == "text":
        _str_field(block, "text", where)
    elif kind in ("image", "document"):
        if not isinstance(block.get("source"), dict):
            raise _invalid(f"{where}.source", "a valid dictionary")
    elif kind == "tool_use" and not nested:
        _str_field(block, "id", where)
        _str_field(block, "name", where)
        if not isinstance(block.get("input"), dict):
            raise _invalid(f"{where}.input", "a valid dictionary")
    elif kind == "tool_result" and not nested:
        _str_field(block, "tool_use_id", where)
        content = block.get("content")
        if isinstance(content, list):
            for index, inner in enumerate(content):
                _block(inner, f"{where}.content.{index}", nested=True)
        elif content is not None and not isinstance(content, str):
            raise _invalid(f"{where}.content", "a valid string or a list of content blocks")


def _message(message: Any, index: int) -> None:
    where = f"messages.{index}"
    if not isinstance(message, dict):
        raise _invalid(where, "a valid dictionary")
    role = message.get("role")
    if role is None:
        raise _required(f"{where}.role")
    if role not in ("user", "assistant"):
        raise _invalid(f"{where}.role", "'user' or 'assistant'")
    if "content" not in message:
        raise _required(f"{where}.content")
    content = message["content"]
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid(f"{where}.content", "a valid string or a list of content blocks")
    for position, block in enumerate(content):
        _block(block, f"{where}.content.{position}")


def _system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _invalid("system", "a valid string or a list of text blocks")
    for index, block in enumerate(system):
        where = f"system.{index}"
        if not isinstance(block, dict):
            raise _invalid(where, "a valid dictionary")
        if block.get("type") != "text":
            raise _invalid(f"{where}.type", "'text'")
        _str_field(block, "text", where)


def _tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _invalid("tools", "a valid list")
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _invalid(f"tools.{index}", "a valid dictionary")
        _str_field(tool, "name", f"tools.{index}")


def _apply_usage(summary: ResponseSummary, usage: Any) -> None:
    """Anthropic's usage (message, message_start or message_delta): each count present
    replaces its part; input_tokens stays the sum of the three input parts."""
    if not isinstance(usage, dict):
        return
    summary.has_usage = True
    if usage.get("output_tokens") is not None:
        summary.output_tokens = as_int(usage["output_tokens"])
    write, read = summary.cache_write_tokens, summary.cache_read_tokens
    uncached = max(summary.input_tokens - write - read, 0)
    if usage.get("input_tokens") is not None:
        uncached = as_int(usage["input_tokens"])
    if usage.get("cache_creation_input_tokens") is not None:
        write = summary.cache_write_tokens = as_int(usage["cache_creation_input_tokens"])
    if usage.get("cache_read_input_tokens") is not None:
        read = summary.cache_read_tokens = as_int(usage["cache_read_input_tokens"])
    summary.input_tokens = min(uncached + write + read, MAX_INT)


class MessagesStreamReader(StreamReader):
    """A ResponseSummary from Anthropic's stream events."""

    def __init__(self) -> None:
        self.summary = ResponseSummary()
        self._tools: dict[int, list[Any]] = {}  # block index -> [name, partial json, input]

    def feed(self, name: str | None, payload: Any) -> bool:
        if not isinstance(payload, dict):
            return False
        kind = payload.get("type")
        summary = self.summary
        if kind == "content_block_delta":
            delta = payload.get("delta")
            if not isinstance(delta, dict):
                return False
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                summary.response_chars += len(delta["text"])
            elif delta.get("type") == "input_json_delta":
                entry = self._tools.get(as_int(payload.get("index")))
                if entry is not None and isinstance(delta.get("partial_json"), str):
                    entry[1] += delta["partial_json"]
        elif kind == "content_block_start":
            block = payload.get("content_block")
            if isinstance(block, dict) and block.get("type") in _TOOL_BLOCKS:
                if len(self._tools) < MAX_TOOL_CALLS:
                    tool_name = block.get("name")
                    self._tools[as_int(payload.get("index"))] = [
                        clip(tool_name if isinstance(tool_name, str) else "", MAX_TEXT_CHARS),
                        "",
                        block.get("input"),
                    ]
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                summary.response_chars += len(block["text"])
        elif kind == "message_start":
            message = payload.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("model"), str):
                    summary.model_used = clip(message["model"], MAX_MODEL_CHARS)
                _apply_usage(summary, message.get("usage"))
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                summary.finish_reason = clip(delta["stop_reason"])
            _apply_usage(summary, payload.get("usage"))
        return False

    @property
    def started(self) -> bool:
        return bool(self.summary.response_chars or self._tools)

    def finish(self) -> ResponseSummary:
        calls = []
        for _, (name, partial, start_input) in sorted(self._tools.items()):
            # A stream cut mid-arguments hashes the text it has.
            digest = tool_arguments_hash(
                partial or (start_input if start_input is not None else {})
            )
            calls.append({"name": name, "arguments_hash": digest})
        self.summary.tool_calls = calls
        return self.summary


class MessagesDialect(Dialect):
    name = "messages"
    endpoint = "/v1/messages"
    upstream_path = "/messages"
    prompt_field = "messages"
    hashed_fields: tuple[str, ...] = ("system", "messages")

    def parse(self, raw: bytes) -> ParsedRequest:
        body = load_object(raw)
        if body.get("max_tokens") is None:
            model_field(body)  # the model's error first, as Anthropic reports them
            raise _required("max_tokens")
        return self._parse(body, int_field(body, "max_tokens", 1, MAX_INT))

    def parse_count_tokens(self, raw: bytes) -> ParsedRequest:
        """A `/v1/messages/count_tokens` body: a Messages request without `max_tokens`."""
        body = load_object(raw)
        body.pop("max_tokens", None)
        body.pop("stream", None)
        return self._parse(body, None)

    def _parse(self, body: dict[str, Any], max_tokens: int | None) -> ParsedRequest:
        model = model_field(body)
        messages = body.get("messages")
        if messages is None:
            raise _required("messages")
        if not isinstance(messages, list):
            raise _invalid("messages", "a valid list")
        if not messages:
            raise InvalidRequest(
                "messages: at least one message is required", param="messages", code="empty_array"
            )
        for index, message in enumerate(messages):
            if (
                type(message) is dict
                and message.get("role") in ("user", "assistant")
                and type(message.get("content")) is str
            ):
                continue
            _message(message, index)
        _system(body.get("system"))
        _tools(body.get("tools"))
        return ParsedRequest(
            body=body, model=model, stream=stream_flag(body), max_tokens=max_tokens
        )

    def input_slots(self, body: dict[str, Any]) -> list[Slot]:
        slots: list[Slot] = []
        system = body.get("system")
        if isinstance(system, str):
            slots.append((body, "system", False))
        elif isinstance(system, list):
            slots.extend(
                (block, "text", False)
                for block in system
                if isinstance(block, dict) and isinstance(block.get("text"), str)
            )
        messages = body.get("messages")
        for message in messages if isinstance(messages, list) else ():
            if not isinstance(message, dict):
                continue
            untrusted = message.get("role") != "assistant"
            content = message.get("content")
            if isinstance(content, str):
                slots.append((message, "content", untrusted))
            elif isinstance(content, list):
                for block in content:
                    _block_slots(block, untrusted, slots)
        return slots

    def output_slots(self, response: Any) -> list[Slot]:
        content = response.get("content") if isinstance(response, dict) else None
        return [
            (block, "text", False)
            for block in (content if isinstance(content, list) else ())
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        ]

    def summarize(self, response: Any) -> ResponseSummary:
        summary = ResponseSummary()
        if not isinstance(response, dict):
            return summary
        if isinstance(response.get("model"), str):
            summary.model_used = clip(response["model"], MAX_MODEL_CHARS)
        _apply_usage(summary, response.get("usage"))
        if isinstance(response.get("stop_reason"), str):
            summary.finish_reason = clip(response["stop_reason"])
        content = response.get("content")
        for block in content if isinstance(content, list) else ():
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                summary.response_chars += len(block["text"])
            elif kind in _TOOL_BLOCKS and len(summary.tool_calls) < MAX_TOOL_CALLS:
                name = block.get("name")
                summary.tool_calls.append(
                    {
                        "name": clip(name if isinstance(name, str) else ""),
                        "arguments_hash": tool_arguments_hash(block.get("input")),
                    }
                )
        return summary

    def stream_reader(self, parsed: ParsedRequest) -> MessagesStreamReader:
        return MessagesStreamReader()

    def stream_texts(self, name: str | None, payload: Any) -> list[StreamText]:
        if not isinstance(payload, dict):
            return []
        kind = payload.get("type")
        if kind == "content_block_delta":
            delta = payload.get("delta")
            if (
                isinstance(delta, dict)
                and delta.get("type") == "text_delta"
                and isinstance(delta.get("text"), str)
            ):
                return [StreamText(as_int(payload.get("index")), delta, "text")]
        elif kind == "content_block_stop":  # no text of its own: ends block `index`
            return [StreamText(as_int(payload.get("index")), None, None, finished=True)]
        return []

    def text_event(self, index: int, text: str, template: Any) -> bytes:
        payload = {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": text},
        }
        return encode_event(payload, "content_block_delta")

    def error_body(self, error: GatewayError) -> bytes:
        return orjson.dumps(self._error(error))

    def stream_error(self, error: GatewayError) -> bytes:
        return encode_event(self._error(error), "error")

    @staticmethod
    def _error(error: GatewayError) -> dict[str, Any]:
        message = error.message
        upstream = getattr(error, "body", None)
        if isinstance(upstream, bytes):  # an upstream 4xx: keep what it said
            try:
                parsed = orjson.loads(upstream)
            except orjson.JSONDecodeError:
                parsed = None
            inner = parsed.get("error") if isinstance(parsed, dict) else None
            if isinstance(inner, dict) and isinstance(inner.get("message"), str):
                if parsed.get("type") == "error" and isinstance(inner.get("type"), str):
                    return {"type": "error", "error": inner}
                message = inner["message"]
        return {
            "type": "error",
            "error": {"type": anthropic_error_type(error.status), "message": message},
        }


def _block_slots(block: Any, untrusted: bool, slots: list[Slot]) -> None:
    if not isinstance(block, dict):
        return
    kind = block.get("type")
    if isinstance(block.get("text"), str):
        slots.append((block, "text", untrusted))
    elif kind == "tool_result":  # what a tool returned: untrusted whoever's turn it is
        content = block.get("content")
        if isinstance(content, str):
            slots.append((block, "content", True))
        elif isinstance(content, list):
            for inner in content:
                _block_slots(inner, True, slots)
    elif kind == "document":
        source = block.get("source")
        if (
            isinstance(source, dict)
            and source.get("type") == "text"
            and isinstance(source.get("data"), str)
        ):
            slots.append((source, "data", True))


MESSAGES = MessagesDialect()
