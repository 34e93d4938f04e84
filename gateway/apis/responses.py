"""OpenAI Responses (`POST /v1/responses`).

Parse: `model`, `input` (a string or a list of items: messages whose content is a string
or parts `input_text` / `output_text` / ..., `function_call`, `function_call_output`,
...), `instructions`, `tools`, `stream`, `max_output_tokens`; `previous_response_id` and
everything else pass through untouched. Usage: `input_tokens` (cached included, as
`input_tokens_details.cached_tokens`, and `cache_write_tokens` where an upstream
sends it), `output_tokens`, `output_tokens_details.
reasoning_tokens`. finish_reason: the response's `status` (`completed`, `failed`, ...),
or for an `incomplete` response its `incomplete_details.reason` (`max_output_tokens`).
Streams: `response.output_text.delta` carries text (`delta`, keyed by `output_index`),
function calls arrive through `response.output_item.added` and
`response.function_call_arguments.delta`, and `response.completed` (or `.incomplete`,
`.failed`) carries the whole response with its usage.
Known limit for output guardrails in `redact` mode: the recap events
(`response.output_text.done`, `response.output_item.done`, `response.completed`) repeat
the full text as the upstream sent it; only the deltas are rewritten (`block` stops the
stream before any recap).
"""

from __future__ import annotations

from typing import Any

from gateway.apis.base import Dialect, ParsedRequest, Slot, StreamReader, StreamText
from gateway.apis.validation import (
    MAX_INT,
    as_int,
    int_field,
    load_object,
    missing,
    model_field,
    optional_type,
    stream_flag,
    wrong_type,
)
from gateway.bounds import MAX_MODEL_CHARS, MAX_TEXT_CHARS, MAX_TOOL_CALLS, clip
from gateway.errors import GatewayError
from gateway.sse import encode_event
from gateway.usage import ResponseSummary
from schemas.tool_arguments import tool_arguments_hash

__all__ = ["RESPONSES", "ResponsesDialect", "ResponsesStreamReader"]

# Tuples, not sets: `x in` a tuple compares, a set hashes, and a client's list or object
# in a role or type field would raise TypeError there (a 502) instead of failing the check.
_TRUSTED_ROLES = ("system", "developer", "assistant")
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")
_TERMINAL = ("response.completed", "response.incomplete", "response.failed")
_PART_TEXT = ("input_text", "output_text", "text", "summary_text")


def _parts(parts: list[Any], where: str) -> None:
    for index, part in enumerate(parts):
        at = f"{where}[{index}]"
        if not isinstance(part, dict):
            raise wrong_type(at, "an object", part)
        kind = part.get("type")
        if kind is None:
            raise missing(f"{at}.type")
        if not isinstance(kind, str):
            raise wrong_type(f"{at}.type", "a string", kind)
        if kind in _PART_TEXT and not isinstance(part.get("text"), str):
            if "text" not in part:
                raise missing(f"{at}.text")
            raise wrong_type(f"{at}.text", "a string", part["text"])


def _item(item: Any, index: int) -> None:
    where = f"input[{index}]"
    if not isinstance(item, dict):
        raise wrong_type(where, "an object", item)
    kind = item.get("type", "message")
    if not isinstance(kind, str):
        raise wrong_type(f"{where}.type", "a string", kind)
    if kind == "message":
        role = item.get("role")
        if role is None:
            raise missing(f"{where}.role")
        if role not in _MESSAGE_ROLES:
            raise wrong_type(
                f"{where}.role", "one of 'user', 'assistant', 'system', 'developer'", role
            )
        content = item.get("content")
        if isinstance(content, list):
            _parts(content, f"{where}.content")
        elif content is None:
            raise missing(f"{where}.content")
        elif not isinstance(content, str):
            raise wrong_type(f"{where}.content", "a string or an array of content parts", content)
    elif kind == "function_call":
        for field in ("call_id", "name", "arguments"):
            if field not in item:
                raise missing(f"{where}.{field}")
            if not isinstance(item[field], str):
                raise wrong_type(f"{where}.{field}", "a string", item[field])
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            if "call_id" not in item:
                raise missing(f"{where}.call_id")
            raise wrong_type(f"{where}.call_id", "a string", item["call_id"])
        output = item.get("output")
        if isinstance(output, list):
            _parts(output, f"{where}.output")
        elif output is None:
            raise missing(f"{where}.output")
        elif not isinstance(output, str):
            raise wrong_type(f"{where}.output", "a string or an array", output)


def _tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise wrong_type("tools", "an array", tools)
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise wrong_type(f"tools[{index}]", "an object", tool)
        if not isinstance(tool.get("type"), str):
            if "type" not in tool:
                raise missing(f"tools[{index}].type")
            raise wrong_type(f"tools[{index}].type", "a string", tool["type"])


def _apply_usage(summary: ResponseSummary, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    summary.has_usage = True
    summary.input_tokens = as_int(usage.get("input_tokens"))
    summary.output_tokens = as_int(usage.get("output_tokens"))
    details = usage.get("input_tokens_details")
    if isinstance(details, dict):
        summary.cache_read_tokens = as_int(details.get("cached_tokens"))
        summary.cache_write_tokens = as_int(details.get("cache_write_tokens"))
    details = usage.get("output_tokens_details")
    if isinstance(details, dict):
        summary.reasoning_tokens = as_int(details.get("reasoning_tokens"))


def _finish_reason(response: dict[str, Any]) -> str | None:
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details")
        if isinstance(details, dict) and isinstance(details.get("reason"), str):
            return clip(details["reason"])
    return clip(status) if isinstance(status, str) else None


def _call(item: dict[str, Any]) -> dict[str, str]:
    name, arguments = item.get("name"), item.get("arguments")
    return {
        "name": clip(name if isinstance(name, str) else ""),
        "arguments_hash": tool_arguments_hash(arguments if isinstance(arguments, str) else ""),
    }


def _text_parts(content: Any) -> list[dict[str, Any]]:
    return [
        part
        for part in (content if isinstance(content, list) else ())
        if isinstance(part, dict)
        and part.get("type") == "output_text"
        and isinstance(part.get("text"), str)
    ]


class ResponsesStreamReader(StreamReader):
    """A ResponseSummary from the `response.*` events of a Responses stream."""

    def __init__(self) -> None:
        self.summary = ResponseSummary()
        self._tools: dict[int, list[str]] = {}  # output_index -> [name, arguments]
        self._final: ResponseSummary | None = None

    def feed(self, name: str | None, payload: Any) -> bool:
        if not isinstance(payload, dict):
            return False
        kind = payload.get("type")
        if kind == "response.output_text.delta":
            if isinstance(payload.get("delta"), str):
                self.summary.response_chars += len(payload["delta"])
        elif kind == "response.function_call_arguments.delta":
            entry = self._tools.get(as_int(payload.get("output_index")))
            if entry is not None and isinstance(payload.get("delta"), str):
                entry[1] += payload["delta"]
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = payload.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                self._feed_call(as_int(payload.get("output_index")), item, kind)
        elif kind in ("response.created", "response.in_progress") or kind in _TERMINAL:
            response = payload.get("response")
            if isinstance(response, dict):
                if isinstance(response.get("model"), str):
                    self.summary.model_used = clip(response["model"], MAX_MODEL_CHARS)
                if kind in _TERMINAL:
                    self._final = RESPONSES.summarize(response)
        return False

    def _feed_call(self, index: int, item: dict[str, Any], kind: str) -> None:
        if index not in self._tools and len(self._tools) >= MAX_TOOL_CALLS:
            return
        entry = self._tools.setdefault(index, ["", ""])
        if isinstance(item.get("name"), str):
            entry[0] = clip(item["name"], MAX_TEXT_CHARS)
        arguments = item.get("arguments")
        if isinstance(arguments, str) and (kind.endswith("done") or not entry[1]):
            entry[1] = arguments

    @property
    def started(self) -> bool:
        return bool(self.summary.response_chars or self._tools)

    def finish(self) -> ResponseSummary:
        summary, final = self.summary, self._final
        summary.tool_calls = [
            {"name": name, "arguments_hash": tool_arguments_hash(arguments)}
            for _, (name, arguments) in sorted(self._tools.items())
        ]
        if final is not None:
            summary.model_used = final.model_used or summary.model_used
            summary.finish_reason = final.finish_reason
            if final.has_usage:
                summary.has_usage = True
                summary.input_tokens = final.input_tokens
                summary.output_tokens = final.output_tokens
                summary.cache_read_tokens = final.cache_read_tokens
                summary.cache_write_tokens = final.cache_write_tokens
                summary.reasoning_tokens = final.reasoning_tokens
            summary.tool_calls = final.tool_calls or summary.tool_calls
            summary.response_chars = summary.response_chars or final.response_chars
        return summary


class ResponsesDialect(Dialect):
    name = "responses"
    endpoint = "/v1/responses"
    upstream_path = "/responses"
    prompt_field = "input"
    hashed_fields: tuple[str, ...] = ("instructions", "input")

    def parse(self, raw: bytes) -> ParsedRequest:
        body = load_object(raw)
        model = model_field(body)
        value = body.get("input")
        if isinstance(value, list):
            for index, item in enumerate(value):
                if (
                    type(item) is dict
                    and item.get("role") in _MESSAGE_ROLES
                    and type(item.get("content")) is str
                    and item.get("type", "message") == "message"
                ):
                    continue
                _item(item, index)
        elif value is not None and not isinstance(value, str):
            raise wrong_type("input", "a string or an array of input items", value)
        optional_type(body, "instructions", str)
        optional_type(body, "previous_response_id", str)
        optional_type(body, "user", str)
        _tools(body.get("tools"))
        max_tokens = int_field(body, "max_output_tokens", 16, MAX_INT)
        return ParsedRequest(
            body=body, model=model, stream=stream_flag(body), max_tokens=max_tokens
        )

    def input_slots(self, body: dict[str, Any]) -> list[Slot]:
        slots: list[Slot] = []
        if isinstance(body.get("instructions"), str):
            slots.append((body, "instructions", False))
        value = body.get("input")
        if isinstance(value, str):
            slots.append((body, "input", True))
            return slots
        for item in value if isinstance(value, list) else ():
            if not isinstance(item, dict):
                continue
            kind = item.get("type", "message")
            if kind == "message":
                untrusted = item.get("role") not in _TRUSTED_ROLES
                content = item.get("content")
            elif kind == "function_call_output":
                untrusted, content = True, item.get("output")
                if isinstance(content, str):
                    slots.append((item, "output", True))
                    continue
            else:
                continue
            if isinstance(content, str):
                slots.append((item, "content", untrusted))
            elif isinstance(content, list):
                slots.extend(
                    (part, "text", untrusted)
                    for part in content
                    if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
        return slots

    def output_slots(self, response: Any) -> list[Slot]:
        output = response.get("output") if isinstance(response, dict) else None
        slots: list[Slot] = []
        for item in output if isinstance(output, list) else ():
            if isinstance(item, dict) and item.get("type") == "message":
                slots.extend((part, "text", False) for part in _text_parts(item.get("content")))
        return slots

    def summarize(self, response: Any) -> ResponseSummary:
        summary = ResponseSummary()
        if not isinstance(response, dict):
            return summary
        if isinstance(response.get("model"), str):
            summary.model_used = clip(response["model"], MAX_MODEL_CHARS)
        _apply_usage(summary, response.get("usage"))
        summary.finish_reason = _finish_reason(response)
        output = response.get("output")
        for item in output if isinstance(output, list) else ():
            if not isinstance(item, dict):
                continue
            kind = item.get("type")
            if kind == "message":
                summary.response_chars += sum(
                    len(part["text"]) for part in _text_parts(item.get("content"))
                )
            elif kind == "function_call" and len(summary.tool_calls) < MAX_TOOL_CALLS:
                summary.tool_calls.append(_call(item))
        return summary

    def stream_reader(self, parsed: ParsedRequest) -> ResponsesStreamReader:
        return ResponsesStreamReader()

    def stream_texts(self, name: str | None, payload: Any) -> list[StreamText]:
        if not isinstance(payload, dict):
            return []
        kind = payload.get("type")
        if kind == "response.output_text.delta" and isinstance(payload.get("delta"), str):
            return [StreamText(as_int(payload.get("output_index")), payload, "delta")]
        if kind == "response.output_text.done":  # the recap: ends output `output_index`
            return [StreamText(as_int(payload.get("output_index")), None, None, finished=True)]
        return []

    def recap_texts(self, name: str | None, payload: Any) -> list[tuple[int, Any, Any]]:
        if not isinstance(payload, dict):
            return []
        kind = payload.get("type")
        index = as_int(payload.get("output_index"))
        if kind == "response.output_text.done" and isinstance(payload.get("text"), str):
            return [(index, payload, "text")]
        if kind == "response.content_part.done":
            return [(index, part, "text") for part in _text_parts([payload.get("part")])]
        if kind == "response.output_item.done":
            item = payload.get("item")
            content = item.get("content") if isinstance(item, dict) else None
            return [(index, part, "text") for part in _text_parts(content)]
        if kind in ("response.completed", "response.incomplete"):
            response = payload.get("response")
            output = response.get("output") if isinstance(response, dict) else None
            found: list[tuple[int, Any, Any]] = []
            for i, item in enumerate(output if isinstance(output, list) else ()):
                if isinstance(item, dict):
                    found += [(i, part, "text") for part in _text_parts(item.get("content"))]
            return found
        return []

    def text_event(self, index: int, text: str, template: Any) -> bytes:
        base = template if isinstance(template, dict) else {}
        payload = {
            "content_index": 0,
            **base,
            "type": "response.output_text.delta",
            "output_index": index,
            "delta": text,
        }
        return encode_event(payload, "response.output_text.delta")

    def error_body(self, error: GatewayError) -> bytes:
        return error.render()

    def stream_error(self, error: GatewayError) -> bytes:
        payload = {
            "type": "error",
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "sequence_number": 0,
        }
        return encode_event(payload, "error")


RESPONSES = ResponsesDialect()
