"""What an upstream failure means for routing: its trigger, whether it says the upstream
is unhealthy, and how long the upstream asked us to wait.

A trigger is the upstream's HTTP status, or `timeout`, `connection` (refused, reset,
incomplete or malformed answer) or `context_window` (the prompt does not fit the model:
a 400 whose message says so, in OpenAI's or Anthropic's words). Retry and fallback rules
(`meterline.routing_config`) are lists of triggers.
"""

from __future__ import annotations

import email.utils
import math
import time

from gateway.errors import UpstreamError, UpstreamStatusError, UpstreamTimeout
from meterline.routing_config import Trigger

__all__ = ["is_upstream_fault", "retry_after_s", "trigger_of"]

_CONTEXT_MARKERS = (
    b"context_length_exceeded",
    b"maximum context length",
    b"context window",
    b"prompt is too long",
    b"too many tokens",
)


def trigger_of(error: UpstreamError) -> Trigger:
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    status = error.upstream_status
    if status is None:
        return "connection"
    if status in (400, 413) and isinstance(error, UpstreamStatusError):
        lowered = error.body[:4096].lower()
        if any(marker in lowered for marker in _CONTEXT_MARKERS):
            return "context_window"
    return status


def is_upstream_fault(trigger: Trigger) -> bool:
    """Whether the failure counts against the deployment's breaker (it is down, overloaded
    or rate limited), rather than against the request."""
    if isinstance(trigger, int):
        return trigger == 429 or trigger >= 500
    return trigger in ("timeout", "connection")


def retry_after_s(error: UpstreamError, now: float | None = None) -> float | None:
    """Seconds the upstream asked us to wait (`Retry-After`: seconds or an HTTP date)."""
    value = error.retry_after
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)
