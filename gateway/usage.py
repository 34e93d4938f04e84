"""What the gateway learns from an upstream answer: tokens, model, finish, tool calls.

`ResponseSummary` is the dialect-neutral result; each dialect (`gateway.apis`) fills it
from a response (`Dialect.summarize`) or a stream (`Dialect.stream_reader`). Token counts
follow the RequestEvent: `input_tokens` is the WHOLE prompt, cached tokens included;
`cache_read_tokens` and `cache_write_tokens` are the parts of it read from / written to
the provider's cache. Strings the upstream sends back (model, tool names) are clipped and
tool calls capped (gateway.bounds) by the dialects: they land in events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ResponseSummary"]


@dataclass(slots=True)
class ResponseSummary:
    model_used: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    response_chars: int = 0
    finish_reason: str | None = None
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    has_usage: bool = False
