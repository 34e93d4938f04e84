"""`RawSpan`: one OTLP span with its resource, decoded but not yet interpreted.

Both wire encodings (protobuf and JSON) decode into this shape, so normalization is
written once. Attribute values are plain Python (str, bool, int, float, bytes, list, dict).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SPAN_ID_BYTES",
    "TRACE_ID_BYTES",
    "DecodedBatch",
    "RawSpan",
    "RejectedSpan",
    "check_times",
    "id_hex",
    "parent_id_hex",
]


@dataclass(frozen=True)
class RawSpan:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str | None
    name: str
    kind: int  # OTLP SpanKind: 0 unspecified, 1 internal, 2 server, 3 client, ...
    start_ns: int
    end_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str = ""


@dataclass(frozen=True)
class RejectedSpan:
    """A span that cannot be accepted; `where` locates it for the exporter's log."""

    where: str
    reason: str


@dataclass
class DecodedBatch:
    spans: list[RawSpan] = field(default_factory=list)
    rejected: list[RejectedSpan] = field(default_factory=list)


# OTLP ids are fixed-size; an all-zero id is invalid (OpenTelemetry spec, SpanContext).
TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
_MAX_UINT64 = 2**64 - 1


def id_hex(raw: bytes, size: int, what: str) -> str:
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(raw)}")
    if not any(raw):
        raise ValueError(f"{what} is all zeros")
    return raw.hex()


def parent_id_hex(raw: bytes) -> str | None:
    """Empty means a root span; anything else must be a valid span id."""
    return id_hex(raw, SPAN_ID_BYTES, "parent_span_id") if raw else None


def check_times(start_ns: int, end_ns: int) -> None:
    if not 0 < start_ns <= _MAX_UINT64:
        raise ValueError("start_time_unix_nano is missing or out of range")
    if not 0 <= end_ns <= _MAX_UINT64:
        raise ValueError("end_time_unix_nano is out of range")
    if end_ns < start_ns:
        raise ValueError("end_time_unix_nano is before start_time_unix_nano")
