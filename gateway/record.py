"""The RequestEvent of one proxied request, built as a plain dict (orjson, ~1 us).

Field names and types follow `schemas.events.RequestEvent`; a unit test validates the
output against that model so the two cannot drift apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.keys import KeyInfo
from gateway.usage import ResponseSummary
from schemas.events.v1 import SCHEMA_VERSION
from schemas.ids import new_event_id

__all__ = ["RequestRecord", "iso_ms"]


def _iso_ms_datetime(epoch_s: float) -> str:
    text = datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")
    return text[:-6] + "Z"


_last_second: tuple[int, str] = (-1, "")  # (unix second, its "YYYY-MM-DDTHH:MM:SS" text)


def iso_ms(epoch_s: float) -> str:
    """The events' timestamp format: UTC, milliseconds, `Z` suffix.

    The same text as `datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec=
    "milliseconds")` (microseconds rounded half-even as fromtimestamp rounds them, then
    truncated), with the text of the current second reused: measured ~0.8 us instead of
    ~3.3 us (one run, busy 2-vCPU machine), and an event has three timestamps
    (tests/unit/gateway/test_record_fast.py checks identity).
    """
    global _last_second
    if not 0 <= epoch_s < 253402300799:  # outside year 1970..9999: the plain way
        return _iso_ms_datetime(epoch_s)
    second = int(epoch_s)
    micros = round((epoch_s - second) * 1e6)  # exact fraction, one rounding, as CPython
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    cached = _last_second
    if cached[0] != second:
        cached = _last_second = (second, _iso_ms_datetime(second)[:-5])
    return f"{cached[1]}.{micros // 1000:03d}Z"


@dataclass(slots=True)
class RequestRecord:
    endpoint: str
    request_id: str = field(default_factory=new_event_id)
    event_id: str = field(default_factory=new_event_id)  # known early: a cache entry cites it
    started_wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    key: KeyInfo | None = None
    session_id: str | None = None
    trace_id: str | None = None
    traceparent: str | None = None  # the caller's W3C header: the gateway span's parent
    app: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    provider: str | None = None
    deployment: str | None = None
    upstream_api: str | None = None
    # Every routing try (gateway.routing.Attempt.as_event dicts); the event keeps them only
    # when there was more than one.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    model_requested: str | None = None
    stream: bool = False
    status_code: int = 200
    error_type: str | None = None
    ttft_ms: float | None = None
    max_tokens_requested: int | None = None
    prompt_hash: str | None = None
    prompt_chars: int = 0
    prompt_signature: str | None = None
    summary: ResponseSummary | None = None
    enforcement: dict[str, str] | None = None  # what enforcement applied (RequestEvent field)
    guardrails: list[dict[str, str]] = field(default_factory=list)  # GuardrailSummary dicts
    # extra response headers (x-ratelimit-*), sent on success and on errors alike
    response_headers: tuple[tuple[bytes, bytes], ...] = ()
    cache: str | None = None  # gateway/cache: miss, hit, semantic_hit (None: not consulted)
    cache_similarity: float | None = None
    cache_source_event_id: str | None = None

    def mark_first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = round((time.perf_counter() - self.started) * 1000, 3)

    def to_event(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        key = self.key
        summary = self.summary or ResponseSummary()
        return {
            "event_id": self.event_id,
            "event_type": "request",
            "schema_version": SCHEMA_VERSION,
            "ts": iso_ms(time.time()),
            "source": "gateway",
            "request_id": self.request_id,
            "ts_start": iso_ms(self.started_wall),
            "ts_end": iso_ms(self.started_wall + elapsed),
            "latency_ms": round(elapsed * 1000, 3),
            "ttft_ms": self.ttft_ms,
            "key_id": key.key_id if key else None,
            "org": key.org if key else "",
            "team": key.team if key else "",
            "project": key.project if key else "",
            "user": key.user if key else "",
            "session_id": self.session_id,
            "trace_id": self.trace_id,
            "app": self.app,
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
            "provider": self.provider,
            "model_requested": self.model_requested,
            "model_used": summary.model_used,
            "endpoint": self.endpoint,
            "deployment": self.deployment,
            "upstream_api": self.upstream_api,
            "attempts": self.attempts if len(self.attempts) > 1 else [],
            "stream": self.stream,
            "status_code": self.status_code,
            "error_type": self.error_type,
            "input_tokens": summary.input_tokens,
            "output_tokens": summary.output_tokens,
            "cache_read_tokens": summary.cache_read_tokens,
            "cache_write_tokens": summary.cache_write_tokens,
            "reasoning_tokens": summary.reasoning_tokens,
            "max_tokens_requested": self.max_tokens_requested,
            "prompt_hash": self.prompt_hash,
            "prompt_chars": self.prompt_chars,
            "prompt_signature": self.prompt_signature,
            "response_chars": summary.response_chars,
            "tool_calls": summary.tool_calls,
            "finish_reason": summary.finish_reason,
            "enforcement": self.enforcement or {},
            "guardrails": self.guardrails,
            "cache": self.cache,
            "cache_similarity": self.cache_similarity,
            "cache_source_event_id": self.cache_source_event_id,
        }
