"""One OTLP export request -> SpanEvents plus the spans refused and why. No I/O."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ingest.otlp.body import Encoding, decompress, too_large
from ingest.otlp.decode_json import decode_json
from ingest.otlp.decode_proto import decode_protobuf
from ingest.otlp.normalize import normalize_span
from ingest.otlp.spans import RejectedSpan
from schemas.events.v1 import SpanEvent

__all__ = ["Received", "receive_spans"]

log = logging.getLogger(__name__)


@dataclass
class Received:
    events: list[SpanEvent] = field(default_factory=list)
    rejected: list[RejectedSpan] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.events) + len(self.rejected)


def receive_spans(
    body: bytes, encoding: Encoding, content_encoding: str | None, max_bytes: int
) -> Received:
    """Raises OtlpError when the request as a whole is refused."""
    if len(body) > max_bytes:
        raise too_large(max_bytes)
    payload = decompress(body, content_encoding, max_bytes)
    batch = decode_protobuf(payload) if encoding == "protobuf" else decode_json(payload)
    received = Received(rejected=batch.rejected)
    for span in batch.spans:
        where = f"span {span.span_id} of trace {span.trace_id}"
        try:
            received.events.append(normalize_span(span))
        except ValueError as exc:
            received.rejected.append(RejectedSpan(where, str(exc)))
        except Exception:  # a bug must cost one span, never the request
            log.exception("could not normalize %s", where)
            received.rejected.append(RejectedSpan(where, "internal error normalizing the span"))
    return received
