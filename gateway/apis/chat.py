"""OpenAI chat completions (`POST /v1/chat/completions`), the benchmark's hot path.

Parse: the fields the gateway reads plus the shapes OpenAI itself rejects (message roles
and contents, `n`, token limits, `user`); the common message shape (string role and
content) costs two lookups. Streams: the gateway always asks the upstream for the usage
chunk (`stream_options.include_usage`) and hides it from a client that did not ask.
The OpenAI usage reader and error encoders here also serve completions and embeddings.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.apis.base import Dialect, ParsedRequest, Slot, StreamReader, StreamText
from gateway.apis.validation import (
    MAX_INT,
    as_int,
    empty_array,
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

__all__ = [
    "CHAT",
    "ChatDialect",
    "ChatStreamReader",
    "apply_openai_usage",
    "openai_stream_error",
]

_MAX_N = 128  # OpenAI: n is between 1 and 128
_CALL_FIELDS = frozenset({"tool_calls", "function_call", "audio"})
# Tuples, not sets: `x in` a tuple compares, a set hashes, and a client's list or object
# in a role or type field would raise TypeError there (a 502) instead of failing the check.
_TRUSTED_ROLES = ("system", "developer", "assistant")


def apply_openai_usage(summary: ResponseSummary, usage: Any) -> None:
    """OpenAI's `usage` (chat, completions, embeddings) into `summary`."""
    if not isinstance(usage, dict):
        return
    summary.has_usage = True
    summary.input_tokens = as_int(usage.get("prompt_tokens"))
    summary.output_tokens = as_int(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details")
    if isinstance(prompt_details, dict):
        summary.cache_read_tokens = as_int(prompt_details.get("cached_tokens"))
    completion_details = usage.get("completion_tokens_details")
    if isinstance(completion_details, dict):
        summary.reasoning_tokens = as_int(completion_details.get("reasoning_tokens"))


def openai_summary(response: Any) -> tuple[ResponseSummary, list[dict[str, Any]]]:
    """What every OpenAI answer says alike (chat, completions, embeddings): the model, the
    usage and the first finish reason; plus its choices that are objects, for the rest."""
    summary = ResponseSummary()
    if not isinstance(response, dict):
        return summary, []
    if isinstance(response.get("model"), str):
        summary.model_used = clip(response["model"], MAX_MODEL_CHARS)
    apply_openai_usage(summary, response.get("usage"))
    choices = response.get("choices")
    kept = [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []
    for choice in kept:
        if isinstance(choice.get("finish_reason"), str):
            summary.finish_reason = clip(choice["finish_reason"])
            break
    return summary, kept


def openai_stream_error(error: GatewayError) -> bytes:
    """An OpenAI-shaped error as a `data:` event (chat and completions streams)."""
    return b"data: " + error.render() + b"\n\n"


def _content_parts(parts: list[Any], param: str) -> None:
    for index, part in enumerate(parts):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise wrong_type(where, "an object", part)
        kind = part.get("type")
        if kind is None:
            raise missing(f"{where}.type")
        if not isinstance(kind, str):
            raise wrong_type(f"{where}.type", "a string", kind)
        if kind == "text" and not isinstance(part.get("text"), str):
            if "text" not in part:
                raise missing(f"{where}.text")
            raise wrong_type(f"{where}.text", "a string", part["text"])


def _message(message: Any, index: int) -> None:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise wrong_type(where, "an object", message)
    role = message.get("role")
    if role is None:
        raise missing(f"{where}.role")
    if not isinstance(role, str):
        raise wrong_type(f"{where}.role", "a string", role)
    content = message.get("content")
    if isinstance(content, str):
        return
    if isinstance(content, list):
        if not content:
            raise empty_array(f"{where}.content")
        _content_parts(content, f"{where}.content")
        return
    # OpenAI: an assistant message may leave content out (or null) when it calls tools
    # (`tool_calls`, the older `function_call`) or refers to earlier audio.
    if content is None and role == "assistant" and not _CALL_FIELDS.isdisjoint(message):
        return
    if content is None and "content" not in message:
        raise missing(f"{where}.content")
    raise wrong_type(f"{where}.content", "a string or an array of content parts", content)


def _tool_call(function: dict[str, Any]) -> dict[str, str]:
    arguments = function.get("arguments")
    return {
        "name": clip(str(function.get("name") or "")),
        "arguments_hash": tool_arguments_hash(arguments if isinstance(arguments, str) else ""),
    }


class ChatStreamReader(StreamReader):
    """A ResponseSummary from the chunks of a chat completion stream."""

    def __init__(self, hide_usage: bool = False) -> None:
        self.summary = ResponseSummary()
        self._hide_usage = hide_usage
        self._tools: dict[int, list[str]] = {}  # tool call index -> [name, arguments]

    def feed(self, name: str | None, payload: Any) -> bool:
        if not isinstance(payload, dict):
            return False
        summary = self.summary
        if summary.model_used is None and isinstance(payload.get("model"), str):
            summary.model_used = clip(payload["model"], MAX_MODEL_CHARS)
        choices = payload.get("choices")
        if payload.get("usage"):
            apply_openai_usage(summary, payload["usage"])
        if not choices:
            return self._hide_usage and bool(payload.get("usage"))
        if not isinstance(choices, list):
            return False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("finish_reason"), str):
                summary.finish_reason = clip(choice["finish_reason"])
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                summary.response_chars += len(delta["content"])
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                self._feed_tool_call(call)
        return False

    @property
    def started(self) -> bool:
        return bool(self.summary.response_chars or self._tools)

    def _feed_tool_call(self, call: Any) -> None:
        if not isinstance(call, dict):
            return
        index = as_int(call.get("index"))
        if index not in self._tools and len(self._tools) >= MAX_TOOL_CALLS:
            return
        entry = self._tools.setdefault(index, ["", ""])
        function = call.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("name"), str) and len(entry[0]) < MAX_TEXT_CHARS:
                entry[0] = clip(entry[0] + function["name"])
            if isinstance(function.get("arguments"), str):
                entry[1] += function["arguments"]

    def finish(self) -> ResponseSummary:
        self.summary.tool_calls = [
            {"name": name, "arguments_hash": tool_arguments_hash(arguments)}
            for _, (name, arguments) in sorted(self._tools.items())
        ]
        return self.summary


def choice_stream_texts(payload: Any, key: str) -> list[StreamText]:
    """The text of every choice of a chat (`delta.content`) or completions (`text`) chunk;
    a choice that finishes without text still yields a piece (its guard flushes)."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not choices or not isinstance(choices, list):
        return []
    texts: list[StreamText] = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        container: Any = choice
        if key == "content":
            container = choice.get("delta")
        finished = choice.get("finish_reason") is not None
        if not (isinstance(container, dict) and isinstance(container.get(key), str)):
            if not finished:
                continue
            if not isinstance(container, dict):  # room for the text the guard releases
                container = choice["delta"] = {}
        index = choice.get("index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else 0
        texts.append(StreamText(index, container, key, finished))
    return texts


class ChatDialect(Dialect):
    name = "chat"
    endpoint = "/v1/chat/completions"
    upstream_path = "/chat/completions"
    prompt_field = "messages"
    hashed_fields: tuple[str, ...] = ("messages",)

    def parse(self, raw: bytes) -> ParsedRequest:
        body = load_object(raw)
        model = model_field(body)
        messages = body.get("messages")
        if messages is None:
            raise missing("messages")
        if not isinstance(messages, list):
            raise wrong_type("messages", "an array", messages)
        if not messages:
            raise empty_array("messages")
        for index, message in enumerate(messages):
            # The common shape costs two lookups; anything else gets the full checks.
            if (
                type(message) is dict
                and type(message.get("role")) is str
                and type(message.get("content")) is str
            ):
                continue
            _message(message, index)
        stream = stream_flag(body)
        max_tokens = int_field(body, "max_tokens", 1, MAX_INT)
        max_completion = int_field(body, "max_completion_tokens", 1, MAX_INT)
        int_field(body, "n", 1, _MAX_N)
        optional_type(body, "user", str)
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise wrong_type("stream_options", "an object", options)
        wants_usage = bool(options and options.get("include_usage") is True)
        return ParsedRequest(
            body=body,
            model=model,
            stream=stream,
            max_tokens=max_tokens if max_tokens is not None else max_completion,
            client_wants_usage=wants_usage,
        )

    def input_slots(self, body: dict[str, Any]) -> list[Slot]:
        slots: list[Slot] = []
        messages = body.get("messages")
        for message in messages if isinstance(messages, list) else ():
            if not isinstance(message, dict):
                continue
            untrusted = message.get("role") not in _TRUSTED_ROLES
            content = message.get("content")
            if isinstance(content, str):
                slots.append((message, "content", untrusted))
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        slots.append((part, "text", untrusted))
        return slots

    def output_slots(self, response: Any) -> list[Slot]:
        choices = response.get("choices") if isinstance(response, dict) else None
        slots: list[Slot] = []
        for choice in choices if isinstance(choices, list) else ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                slots.append((message, "content", False))
        return slots

    def summarize(self, response: Any) -> ResponseSummary:
        summary, choices = openai_summary(response)
        for choice in choices:
            message = choice.get("message")
            if not isinstance(message, dict):
                continue
            if isinstance(message.get("content"), str):
                summary.response_chars += len(message["content"])
            calls = message.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and len(summary.tool_calls) < MAX_TOOL_CALLS:
                    summary.tool_calls.append(_tool_call(function))
        return summary

    def stream_reader(self, parsed: ParsedRequest) -> ChatStreamReader:
        return ChatStreamReader(hide_usage=not parsed.client_wants_usage)

    def stream_body(self, parsed: ParsedRequest, raw: bytes) -> bytes:
        if parsed.client_wants_usage:
            return raw
        request = dict(parsed.body)  # ask for usage; the reader hides it from the client
        options = dict(request.get("stream_options") or {})
        options["include_usage"] = True
        request["stream_options"] = options
        return orjson.dumps(request)

    def stream_texts(self, name: str | None, payload: Any) -> list[StreamText]:
        return choice_stream_texts(payload, "content")

    def text_event(self, index: int, text: str, template: Any) -> bytes:
        choice = {"index": index, "delta": {"content": text}, "finish_reason": None}
        base = template if isinstance(template, dict) else {}
        return encode_event({**base, "choices": [choice]})

    def error_body(self, error: GatewayError) -> bytes:
        return error.render()

    def stream_error(self, error: GatewayError) -> bytes:
        return openai_stream_error(error)


CHAT = ChatDialect()
