"""`serve(settings)`: the ingest process (sink + read API), blocking until SIGTERM/SIGINT.

In embedded mode this is the one process that owns the ClickHouse engine (ARCHITECTURE §6),
so the sink threads and the API share a single client behind a lock. `ingest.sink.workers`
(METERLINE_SINK_WORKERS) SinkConsumer threads of the one group share the topics'
partitions, each with its own batches and offsets; the same with an external ClickHouse
(run more ingest hosts to scale past one process).
"""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from fastapi import FastAPI, Response

from ingest.api import create_app
from ingest.api.auth import ReadTokens, exposure_warning
from ingest.controlplane.restore import ControlPlaneWatch, restore_control_plane
from ingest.metrics import PROMETHEUS_CONTENT_TYPE, ingest_registry, render
from ingest.otlp import KafkaSpanPublisher, OtlpAuth, OtlpStats, install_otlp_receiver
from ingest.otlp.credentials import CredentialReader
from ingest.sink.clickhouse import ClickHouseSink
from ingest.sink.consumer import SinkConsumer
from ingest.sink.status import SinkStatus, SinkStatusGroup
from meterline.kafka import create_topics, wait_for_broker
from meterline.settings import Settings
from meterline.warehouse import SharedClient, connect, migrate, repair_recent_rollups

__all__ = ["IngestService", "build_app", "serve"]

log = logging.getLogger(__name__)


class IngestService:
    """Connect + migrate, then run the sink on background threads (one per
    `ingest.sink.workers`); `close()` flushes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        client = connect(settings)
        applied = migrate(client, settings.clickhouse_database)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        repaired = repair_recent_rollups(client, settings.clickhouse_database)
        if repaired:
            log.warning("refilled the last 2 days of %s: a crash had cut them short", repaired)
        self.client = SharedClient(client, settings.clickhouse_database)
        self.consumers: list[SinkConsumer] = []
        for _ in range(settings.ingest.sink.workers):
            sink = ClickHouseSink(self.client)
            sink.setup()
            self.consumers.append(SinkConsumer(settings, sink, status=SinkStatus()))
        statuses = [consumer.status for consumer in self.consumers]
        # One consumer: its own status, as before; several: their sum.
        self.status: SinkStatus | SinkStatusGroup = (
            statuses[0] if len(statuses) == 1 else SinkStatusGroup(statuses)
        )
        self.spans = KafkaSpanPublisher(settings)  # the OTLP receiver's producer
        self.credentials = CredentialReader(settings)  # who may export spans
        self.otlp_stats = OtlpStats()
        self.control_watch = ControlPlaneWatch(settings, self.client)

    def start(self) -> None:
        wait_for_broker(self.settings)
        create_topics(self.settings)  # idempotent; never rely on auto-creation
        # Before the sink starts: an embedded-broker restart left the control topics empty.
        restore_control_plane(self.settings, self.client)
        self.control_watch.start()  # and again whenever the broker comes back empty
        self.spans.start()
        self.credentials.start()
        for index, consumer in enumerate(self.consumers):
            name = "ingest-sink" if index == 0 else f"ingest-sink-{index}"
            thread = threading.Thread(target=self._run, args=(consumer,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def consumer(self) -> SinkConsumer:
        """The first (with one worker, the only) sink consumer."""
        return self.consumers[0]

    @property
    def sink(self) -> ClickHouseSink:
        sink = self.consumer.sink
        assert isinstance(sink, ClickHouseSink)
        return sink

    def _run(self, consumer: SinkConsumer) -> None:
        try:
            consumer.run(self._stop)
        except Exception:
            log.exception("the sink loop stopped on an unexpected error")
            consumer.status.update(running=False, last_error="sink loop crashed; see the log")

    def _stop_sink(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error("the sink thread %s did not stop within %.0fs", thread.name, timeout_s)

    def close(self) -> None:
        self.spans.close()  # uvicorn has drained the OTLP requests: deliver what is left
        self.credentials.close()
        self.control_watch.close()
        self._stop_sink()
        self.client.close()


def build_app(service: IngestService) -> FastAPI:
    """The read API plus the OTLP receiver, over the service's client and producer."""
    settings = service.settings
    app = create_app(service.client, service.status, ReadTokens.from_settings(settings))
    app.state.otlp_stats = install_otlp_receiver(
        app,
        service.spans,
        OtlpAuth(service.credentials, required=settings.ingest.otlp.auth == "required"),
        max_body_bytes=settings.ingest.otlp.max_body_bytes,
        max_span_tokens=settings.ingest.otlp.max_span_tokens,
        stats=service.otlp_stats,
    )
    registry = ingest_registry(service.status, service.otlp_stats)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(render(registry), media_type=PROMETHEUS_CONTENT_TYPE)

    return app


def serve(settings: Settings) -> None:
    """Run the ingest process until SIGTERM/SIGINT (uvicorn handles both)."""
    warning = exposure_warning(ReadTokens.from_settings(settings), settings.host)
    if warning:
        log.warning(warning)
    if settings.ingest.otlp.auth == "off":
        log.warning(
            "METERLINE_OTLP_AUTH=off: senders on the loopback address may export spans to "
            "/v1/traces without a credential, attributed as they claim; never use this "
            "where untrusted processes share the host"
        )
    service = IngestService(settings)
    service.start()
    app = build_app(service)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.ingest_port,
        access_log=False,
        log_level="info",
    )
    server = uvicorn.Server(config)
    log.info(
        "ingest (read API, OTLP /v1/traces) on http://%s:%d", settings.host, settings.ingest_port
    )
    try:
        server.run()  # returns after SIGTERM/SIGINT, once requests are drained
    finally:
        # Stop intake, final flush + commit, then release the engine.
        service.close()
