"""OTLP/HTTP responses: ExportTraceServiceResponse or google.rpc.Status, in the request's
encoding (protobuf or JSON), as the OTLP specification asks."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from ingest.otlp.body import Encoding
from ingest.otlp.spans import RejectedSpan

__all__ = ["OtlpReply", "error_reply", "export_reply"]

_MEDIA_TYPES: dict[Encoding, str] = {
    "protobuf": "application/x-protobuf",
    "json": "application/json",
}
# google.rpc.Code values for the statuses we send.
# INVALID_ARGUMENT, UNAUTHENTICATED, UNAVAILABLE
_RPC_CODES = {400: 3, 401: 16, 413: 3, 415: 3, 503: 14}
_MAX_LISTED_REASONS = 5


@dataclass(frozen=True)
class OtlpReply:
    status_code: int
    body: bytes
    media_type: str


def export_reply(
    encoding: Encoding,
    rejected: list[RejectedSpan],
    total: int,
    warnings: list[str] | None = None,
) -> OtlpReply:
    """`warnings`: said in partial_success even when no span was rejected (the OTLP spec
    lets a server report warnings with rejected_spans = 0)."""
    response = ExportTraceServiceResponse()
    messages = [_describe(rejected, total)] if rejected else []
    messages += warnings or []
    if messages:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(
                rejected_spans=len(rejected), error_message="; ".join(messages)
            )
        )
    return OtlpReply(200, _render(response, encoding), _MEDIA_TYPES[encoding])


def error_reply(status_code: int, message: str, encoding: Encoding = "json") -> OtlpReply:
    status = Status(code=_RPC_CODES.get(status_code, 2), message=message)
    return OtlpReply(status_code, _render(status, encoding), _MEDIA_TYPES[encoding])


def _render(message: Message, encoding: Encoding) -> bytes:
    if encoding == "protobuf":
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


def _describe(rejected: list[RejectedSpan], total: int) -> str:
    listed = "; ".join(f"{r.where}: {r.reason}" for r in rejected[:_MAX_LISTED_REASONS])
    more = len(rejected) - _MAX_LISTED_REASONS
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{len(rejected)} of {total} spans rejected: {listed}{suffix}"
