"""`POST /v1/traces`: the OTLP/HTTP trace receiver, a thin layer over `receive_spans`.

Every outcome is an OTLP answer: 200 (with partial_success naming what was wrong),
400 undecodable, 401 no or unknown credential, 413 too large, 415 unsupported type or
encoding, 503 Kafka unavailable or credentials still loading (the exporter retries).
No input leads to a 500.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Protocol

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ingest.otlp.auth import OtlpAuth
from ingest.otlp.body import Encoding, encoding_of, too_large
from ingest.otlp.errors import OtlpError, UnauthenticatedError
from ingest.otlp.publisher import Unpublishable
from ingest.otlp.receiver import DEFAULT_MAX_SPAN_TOKENS, receive_spans
from ingest.otlp.response import OtlpReply, error_reply, export_reply
from ingest.otlp.spans import RejectedSpan
from ingest.otlp.stats import OtlpStats
from schemas.events.v1 import SpanEvent

__all__ = ["TRACES_PATH", "SpanPublisher", "install_otlp_receiver"]

TRACES_PATH = "/v1/traces"


class SpanPublisher(Protocol):
    async def publish(self, events: Sequence[SpanEvent]) -> list[Unpublishable]: ...


def install_otlp_receiver(
    app: FastAPI,
    publisher: SpanPublisher,
    auth: OtlpAuth,
    *,
    max_body_bytes: int,
    max_span_tokens: int = DEFAULT_MAX_SPAN_TOKENS,
    stats: OtlpStats | None = None,
) -> OtlpStats:
    stats = stats if stats is not None else OtlpStats()

    async def export_traces(request: Request) -> Response:
        content_type = request.headers.get("content-type")
        encoding: Encoding = "json"
        with contextlib.suppress(OtlpError):
            encoding = encoding_of(content_type)  # errors are answered in the sender's encoding
        try:
            # First, and before reading the body: an unauthenticated sender learns nothing
            # and costs no decoding.
            sender = auth.sender(
                request.headers.get("authorization"),
                request.client.host if request.client else None,
            )
            encoding_of(content_type)
            body = await _read_body(request, max_body_bytes)
            # Decoding a large batch is CPU work: keep the event loop free for other requests.
            received = await run_in_threadpool(
                receive_spans,
                body,
                encoding,
                request.headers.get("content-encoding"),
                max_body_bytes,
                sender,
                max_span_tokens,
            )
            refused = await publisher.publish(received.events)
        except OtlpError as exc:
            if isinstance(exc, UnauthenticatedError):
                stats.add(unauthenticated=1)
            return _response(error_reply(exc.status_code, exc.message, encoding), exc)
        except ClientDisconnect:
            return Response(status_code=400)
        rejected = received.rejected + [_where(event, reason) for event, reason in refused]
        stats.add(
            exports=1,
            spans_accepted=len(received.events) - len(refused),
            spans_rejected=len(rejected),
            spans_with_dropped_claims=received.spans_with_dropped_claims,
        )
        reply = export_reply(encoding, rejected, received.total, received.warnings(sender))
        return _response(reply)

    app.add_api_route(
        TRACES_PATH,
        export_traces,
        methods=["POST"],
        summary="OTLP/HTTP traces (protobuf or JSON, optionally gzip); "
        "Authorization: Bearer <virtual key or ingest token>",
    )
    return stats


def _where(event: SpanEvent, reason: str) -> RejectedSpan:
    return RejectedSpan(f"span {event.span_id} of trace {event.trace_id}", reason)


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _response(reply: OtlpReply, error: OtlpError | None = None) -> Response:
    headers = None
    if error is not None and error.status_code == 503:
        headers = {"Retry-After": "1"}
    elif isinstance(error, UnauthenticatedError):
        headers = {"WWW-Authenticate": "Bearer"}
    return Response(
        content=reply.body,
        status_code=reply.status_code,
        media_type=reply.media_type,
        headers=headers,
    )
