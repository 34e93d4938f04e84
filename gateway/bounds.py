"""Size limits for client-chosen strings that end up in events, spans and metrics.

Every string a client (or an upstream echoing a client) chooses is bounded before it is
copied into a RequestEvent, SpanEvent or GuardrailEvent, so no request can make an event
too large for the broker or a ClickHouse row absurdly wide. Two rules, applied consistently:

- A body field the request is *routed or priced by* (`model`) is rejected when too long:
  a 400 naming the field, as OpenAI does ("string too long ... maximum length 256").
- Free attribution strings taken from headers (`x-session-id`, `x-meterline-app`,
  `user-agent`, `traceparent`) and strings an upstream sends back (`model`, tool names)
  are truncated: a proxy or SDK the user does not control sets some of them, and failing
  the call over a label would be worse than keeping its first 256 characters.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_MODEL_CHARS", "MAX_TEXT_CHARS", "MAX_TOOL_CALLS", "clip", "clip_bytes"]

MAX_MODEL_CHARS: Final = 256  # OpenAI's own limit on `model`
MAX_TEXT_CHARS: Final = 256  # any other free string copied into an event
MAX_TOOL_CALLS: Final = 128  # OpenAI accepts at most 128 tools per request


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit]


def clip_bytes(value: bytes, limit: int = MAX_TEXT_CHARS) -> str:
    """A header value as text: its first `limit` bytes, undecodable bytes replaced."""
    return value[:limit].decode("utf-8", errors="replace")
