"""Helpers shared by both translation directions (private)."""

from __future__ import annotations

from typing import Any, NoReturn

import orjson

from gateway.errors import InvalidRequest, UpstreamUnavailable

__all__ = [
    "MALFORMED",
    "arguments_to_input",
    "dumps",
    "invalid",
    "malformed",
    "split_data_url",
    "upstream_error",
]

MALFORMED = "upstream sent a malformed answer"

# Errors that mean "the dict we were handed does not have the shape we expect". Translation code
# indexes upstream payloads strictly and converts these into UpstreamUnavailable at the edge.
SHAPE_ERRORS = (KeyError, TypeError, AttributeError, ValueError, IndexError)


def malformed(detail: str = "") -> NoReturn:
    raise UpstreamUnavailable(f"{MALFORMED}: {detail}" if detail else MALFORMED)


def upstream_error(message: Any) -> NoReturn:
    """An error reported inside a stream (Anthropic `error` event, chat `{"error": ...}` chunk)."""
    if isinstance(message, str) and message:
        raise UpstreamUnavailable(f"upstream error: {message[:500]}")
    malformed("error event")


def invalid(param: str, message: str) -> NoReturn:
    raise InvalidRequest(f"{param}: {message}", param=param)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def arguments_to_input(arguments: Any) -> dict[str, Any]:
    """A chat tool call's `arguments` (a JSON string) -> an Anthropic `tool_use.input` object.

    An empty string means "no arguments" ({}). Anything that is not a JSON object (invalid JSON,
    a truncated string from a `length` stop, an array) also becomes {}: `tool_use.input` must be an
    object, and a model's broken arguments echoed back in a conversation history must not turn
    the whole request into an error.
    """
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def split_data_url(url: str) -> tuple[str, str] | None:
    """`data:<media type>;base64,<data>` -> (media type, data); None for any other URL."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep:
        return None
    media_type, _, encoding = head.partition(";")
    if encoding != "base64":
        return None
    return media_type.lower(), data
