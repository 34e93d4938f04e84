"""Hand validation of the few request fields the gateway needs (ARCHITECTURE §8).

Bodies are parsed once with orjson; only the fields the gateway reads, plus the few shapes
OpenAI itself rejects (message roles and contents, `n`, token limits, `user`), are checked
with plain type tests. Every failure is a 400 naming the field (`InvalidRequest.param`) in
OpenAI's wording and codes (`invalid_type`, `missing_required_parameter`, ...), so a client
learns the same thing from the gateway as from OpenAI. The rest goes upstream as sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.bounds import MAX_MODEL_CHARS
from gateway.errors import InvalidRequest

__all__ = ["ParsedRequest", "parse_chat", "parse_embeddings", "prompt_stats"]

_MAX_N = 128  # OpenAI: n is between 1 and 128
_CALL_FIELDS = frozenset({"tool_calls", "function_call", "audio"})
_MAX_INT = 2**31 - 1  # token counts beyond any model; far inside the Int64 columns


@dataclass(slots=True)
class ParsedRequest:
    body: dict[str, Any]
    model: str
    stream: bool = False
    max_tokens: int | None = None
    # Whether the client itself asked for the usage chunk of a stream.
    client_wants_usage: bool = False


def _load(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def _kind(value: Any) -> str:
    """The JSON type of a value, worded as OpenAI words it in its errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _wrong_type(param: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _missing(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _empty_array(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        param=param,
        code="empty_array",
    )


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise _missing("model")
    if not isinstance(model, str):
        raise _wrong_type("model", "a string", model)
    if not model.strip():
        raise InvalidRequest("'model' must be a non-empty string", param="model")
    if len(model) > MAX_MODEL_CHARS:  # it is routed by and copied into every event
        raise InvalidRequest(
            f"Invalid 'model': string too long. Expected a string with maximum length "
            f"{MAX_MODEL_CHARS}, but got a string with length {len(model)} instead.",
            param="model",
            code="string_above_max_length",
        )
    return model


def _int_field(body: dict[str, Any], field: str, low: int, high: int) -> int | None:
    """An optional integer in [low, high]; OpenAI's wording and codes when it is not."""
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(field, "an integer", value)
    if value < low:
        raise InvalidRequest(
            f"Invalid '{field}': integer below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            param=field,
            code="integer_below_min_value",
        )
    if value > high:  # also keeps the value inside the event's Int64 column
        raise InvalidRequest(
            f"Invalid '{field}': integer above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            param=field,
            code="integer_above_max_value",
        )
    return value


def _user(body: dict[str, Any]) -> None:
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _wrong_type("user", "a string", user)


def _content_parts(parts: list[Any], param: str) -> None:
    for index, part in enumerate(parts):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise _wrong_type(where, "an object", part)
        kind = part.get("type")
        if kind is None:
            raise _missing(f"{where}.type")
        if not isinstance(kind, str):
            raise _wrong_type(f"{where}.type", "a string", kind)
        if kind == "text" and not isinstance(part.get("text"), str):
            if "text" not in part:
                raise _missing(f"{where}.text")
            raise _wrong_type(f"{where}.text", "a string", part["text"])


def _message(message: Any, index: int) -> None:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise _wrong_type(where, "an object", message)
    role = message.get("role")
    if role is None:
        raise _missing(f"{where}.role")
    if not isinstance(role, str):
        raise _wrong_type(f"{where}.role", "a string", role)
    content = message.get("content")
    if isinstance(content, str):
        return
    if isinstance(content, list):
        if not content:
            raise _empty_array(f"{where}.content")
        _content_parts(content, f"{where}.content")
        return
    # OpenAI: an assistant message may leave content out (or null) when it calls tools
    # (`tool_calls`, the older `function_call`) or refers to earlier audio.
    if content is None and role == "assistant" and not _CALL_FIELDS.isdisjoint(message):
        return
    if content is None and "content" not in message:
        raise _missing(f"{where}.content")
    raise _wrong_type(f"{where}.content", "a string or an array of content parts", content)


def _stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise _wrong_type("stream", "a boolean", stream)
    return stream


def parse_chat(raw: bytes) -> ParsedRequest:
    body = _load(raw)
    model = _model(body)
    messages = body.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _wrong_type("messages", "an array", messages)
    if not messages:
        raise _empty_array("messages")
    for index, message in enumerate(messages):
        # The common shape costs two lookups; anything else gets the full checks.
        if (
            type(message) is dict
            and type(message.get("role")) is str
            and type(message.get("content")) is str
        ):
            continue
        _message(message, index)
    stream = _stream(body)
    max_tokens = _int_field(body, "max_tokens", 1, _MAX_INT)
    max_completion = _int_field(body, "max_completion_tokens", 1, _MAX_INT)
    _int_field(body, "n", 1, _MAX_N)
    _user(body)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _wrong_type("stream_options", "an object", options)
    wants_usage = bool(options and options.get("include_usage") is True)
    return ParsedRequest(
        body=body,
        model=model,
        stream=stream,
        max_tokens=max_tokens if max_tokens is not None else max_completion,
        client_wants_usage=wants_usage,
    )


def parse_embeddings(raw: bytes) -> ParsedRequest:
    body = _load(raw)
    model = _model(body)
    value = body.get("input")
    valid = isinstance(value, str) or (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, (str, int, list)) and not isinstance(item, bool) for item in value)
    )
    if not valid:
        raise InvalidRequest(
            "'input' is required and must be a string or a non-empty array", param="input"
        )
    _user(body)
    return ParsedRequest(body=body, model=model)


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: count the text ones
        return sum(
            len(part["text"])
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


def prompt_stats(body: dict[str, Any], field: str) -> tuple[str, int]:
    """(sha256 of the prompt's JSON, its character count); the text itself is not kept."""
    value = body.get(field)
    try:
        digest = hashlib.sha256(orjson.dumps(value)).hexdigest()
    except TypeError:  # integers beyond 64 bits and similar oddities
        digest = hashlib.sha256(repr(value).encode()).hexdigest()
    if field == "messages":
        chars = sum(_text_chars(m.get("content")) for m in value)
    elif isinstance(value, str):
        chars = len(value)
    else:
        chars = sum(len(item) for item in value if isinstance(item, str))
    return digest, chars
