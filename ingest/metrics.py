"""Ingest's Prometheus metrics (GET /metrics): the sink's and the OTLP receiver's counters.

Read at scrape time from the same snapshots /healthz shows (a prometheus_client
collector over `SinkStatus` and `OtlpStats`), so the sink thread and the receiver pay
nothing per message for them. One `CollectorRegistry` per app, as in the processors.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ingest.otlp.stats import OtlpStats
from ingest.sink.status import SinkStatus, SinkStatusGroup

__all__ = ["PROMETHEUS_CONTENT_TYPE", "ingest_registry", "render"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"
_SINK_COUNTERS = {
    "messages_consumed": "Kafka messages the sink consumed.",
    "rows_written": "Rows the sink wrote to ClickHouse.",
    "dead_letters": "Messages the sink dead-lettered (with their reason) instead of storing.",
    "flushes": "Batches written to ClickHouse.",
    "commits": "Offset commits after a write.",
}
_SINK_GAUGES = {
    "pending_rows": "Rows buffered, not yet written.",
    "uncommitted_messages": "Messages consumed whose offsets are not committed yet.",
    "lag_messages": "Messages on the sink's partitions not consumed yet (consumer lag).",
    "assigned_partitions": "Partitions assigned to the sink's consumers.",
    "consecutive_failures": "Failed writes in a row (0 when the last one succeeded).",
}
_OTLP_COUNTERS = {
    "exports": "OTLP trace exports received.",
    "spans_accepted": "Spans published to the spans topic.",
    "spans_rejected": "Spans refused one by one (invalid, implausible, unpublishable).",
    "spans_with_dropped_claims": "Spans whose claimed attribution disagreed with the sender.",
    "unauthenticated": "Exports refused with 401.",
}


class _IngestCollector(Collector):
    def __init__(self, sink: SinkStatus | SinkStatusGroup | None, otlp: OtlpStats | None) -> None:
        self._sink = sink
        self._otlp = otlp

    def collect(self) -> Iterator[Metric]:
        if self._sink is not None:
            sink = self._sink.snapshot()
            for name, help_text in _SINK_COUNTERS.items():
                yield CounterMetricFamily(f"meterline_ingest_sink_{name}", help_text, sink[name])
            for name, help_text in _SINK_GAUGES.items():
                yield GaugeMetricFamily(f"meterline_ingest_sink_{name}", help_text, sink[name])
        if self._otlp is not None:
            otlp = self._otlp.snapshot()
            for name, help_text in _OTLP_COUNTERS.items():
                yield CounterMetricFamily(f"meterline_ingest_otlp_{name}", help_text, otlp[name])


def ingest_registry(
    sink: SinkStatus | SinkStatusGroup | None, otlp: OtlpStats | None
) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_IngestCollector(sink, otlp))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
