"""`POST /v1/traces`: the OTLP/HTTP trace receiver, a thin layer over `receive_spans`.

Every outcome is an OTLP answer: 200 (with partial_success naming what was wrong),
400 undecodable, 413 too large, 415 unsupported type or encoding, 503 Kafka unavailable
(the exporter retries). No input leads to a 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ingest.otlp.body import Encoding, encoding_of, too_large
from ingest.otlp.errors import OtlpError, PublishUnavailableError
from ingest.otlp.receiver import receive_spans
from ingest.otlp.response import OtlpReply, error_reply, export_reply
from schemas.events.v1 import SpanEvent

__all__ = ["TRACES_PATH", "SpanPublisher", "install_otlp_receiver"]

TRACES_PATH = "/v1/traces"


class SpanPublisher(Protocol):
    async def publish(self, events: Sequence[SpanEvent]) -> None: ...


def install_otlp_receiver(app: FastAPI, publisher: SpanPublisher, max_body_bytes: int) -> None:
    async def export_traces(request: Request) -> Response:
        encoding: Encoding = "json"
        try:
            encoding = encoding_of(request.headers.get("content-type"))
            body = await _read_body(request, max_body_bytes)
            # Decoding a large batch is CPU work: keep the event loop free for other requests.
            received = await run_in_threadpool(
                receive_spans,
                body,
                encoding,
                request.headers.get("content-encoding"),
                max_body_bytes,
            )
            await publisher.publish(received.events)
        except OtlpError as exc:
            return _response(error_reply(exc.status_code, exc.message, encoding), exc)
        except ClientDisconnect:
            return Response(status_code=400)
        return _response(export_reply(encoding, received.rejected, received.total))

    app.add_api_route(
        TRACES_PATH,
        export_traces,
        methods=["POST"],
        summary="OTLP/HTTP traces (protobuf or JSON, optionally gzip)",
    )


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
    headers = {"Retry-After": "1"} if isinstance(error, PublishUnavailableError) else None
    return Response(
        content=reply.body,
        status_code=reply.status_code,
        media_type=reply.media_type,
        headers=headers,
    )
