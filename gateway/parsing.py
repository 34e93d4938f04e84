"""Hand validation of the few request fields the gateway needs (ARCHITECTURE §8).

Bodies are parsed once with orjson; only the fields the gateway reads are checked, and
every failure names the field (`InvalidRequest.param`). The rest goes upstream as sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import InvalidRequest

__all__ = ["ParsedRequest", "parse_chat", "parse_embeddings", "prompt_stats"]


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


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("'model' is required and must be a non-empty string", param="model")
    return model


def _optional_int(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequest(f"'{field}' must be a non-negative integer", param=field)
    return value


def parse_chat(raw: bytes) -> ParsedRequest:
    body = _load(raw)
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "'messages' is required and must be a non-empty array", param="messages"
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(
                f"'messages[{index}]' must be an object", param=f"messages[{index}]"
            )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    max_tokens = _optional_int(body, "max_tokens")
    max_completion = _optional_int(body, "max_completion_tokens")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object", param="stream_options")
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
