"""Who produced an event: the envelope's `source` (set by the producing service, never by a
client), shared by producers and by the consumers that act on it."""

from __future__ import annotations

from typing import Final

__all__ = ["GATEWAY", "OTLP_INGEST"]

# The gateway's own RequestEvents and spans: the span cost agent never costs a gateway span
# (its RequestEvent is costed). Only the envelope tells it, since span attributes and
# service.name are whatever an OTLP sender chose.
GATEWAY: Final = "gateway"
# Spans received over OTLP by ingest, whatever they claim to be.
OTLP_INGEST: Final = "ingest.otlp"
