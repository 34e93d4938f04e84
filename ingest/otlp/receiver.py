"""One OTLP export request -> SpanEvents plus the spans refused and why. No I/O."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ingest.otlp.body import Encoding, decompress, too_large
from ingest.otlp.decode_json import decode_json
from ingest.otlp.decode_proto import decode_protobuf
from ingest.otlp.normalize import normalize_span
from ingest.otlp.spans import RejectedSpan
from ingest.otlp.trust import attribute, check_token_counts
from schemas.credentials import Credential
from schemas.events.v1 import SpanEvent

__all__ = ["DEFAULT_MAX_SPAN_TOKENS", "Received", "receive_spans"]

log = logging.getLogger(__name__)

DEFAULT_MAX_SPAN_TOKENS = 10_000_000
_LISTED_CLAIMS = 5


@dataclass
class Received:
    events: list[SpanEvent] = field(default_factory=list)
    rejected: list[RejectedSpan] = field(default_factory=list)
    spans_with_dropped_claims: int = 0
    dropped_claims: list[str] = field(default_factory=list)  # distinct, in order seen

    @property
    def total(self) -> int:
        return len(self.events) + len(self.rejected)

    def warnings(self, sender: Credential | None) -> list[str]:
        if not self.spans_with_dropped_claims or sender is None:
            return []
        listed = ", ".join(self.dropped_claims[:_LISTED_CLAIMS])
        more = len(self.dropped_claims) - _LISTED_CLAIMS
        suffix = f" and {more} more" if more > 0 else ""
        return [
            f"claimed attribution ignored on {self.spans_with_dropped_claims} spans "
            f"({listed}{suffix}): spans are attributed to the credential "
            f"{sender.control_key} (org {sender.org!r})"
        ]


def receive_spans(
    body: bytes,
    encoding: Encoding,
    content_encoding: str | None,
    max_bytes: int,
    sender: Credential | None = None,
    max_span_tokens: int = DEFAULT_MAX_SPAN_TOKENS,
) -> Received:
    """Raises OtlpError when the request as a whole is refused. `sender`: the credential
    the spans are attributed to (None: open mode, the spans' own claims are kept)."""
    if len(body) > max_bytes:
        raise too_large(max_bytes)
    payload = decompress(body, content_encoding, max_bytes)
    batch = decode_protobuf(payload) if encoding == "protobuf" else decode_json(payload)
    received = Received(rejected=batch.rejected)
    seen_claims: set[str] = set()
    for span in batch.spans:
        where = f"span {span.span_id} of trace {span.trace_id}"
        try:
            event = normalize_span(span)
            check_token_counts(event, max_span_tokens)
            if sender is not None:
                event, dropped = attribute(event, sender)
                if dropped:
                    received.spans_with_dropped_claims += 1
                    for claim in dropped:
                        if claim not in seen_claims:
                            seen_claims.add(claim)
                            received.dropped_claims.append(claim)
            received.events.append(event)
        except ValueError as exc:
            received.rejected.append(RejectedSpan(where, str(exc)))
        except Exception:  # a bug must cost one span, never the request
            log.exception("could not normalize %s", where)
            received.rejected.append(RejectedSpan(where, "internal error normalizing the span"))
    return received
