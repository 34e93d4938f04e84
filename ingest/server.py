"""`serve(settings)`: the ingest process (sink + read API), blocking until SIGTERM/SIGINT.

In embedded mode this is the one process that owns the ClickHouse engine (ARCHITECTURE §6),
so the sink thread and the API share a single client behind a lock.
"""

from __future__ import annotations

import logging
import threading

import uvicorn
from fastapi import FastAPI

from ingest.api import create_app
from ingest.api.auth import ReadTokens, exposure_warning
from ingest.controlplane.restore import ControlPlaneWatch, restore_control_plane
from ingest.otlp import KafkaSpanPublisher, OtlpAuth, OtlpStats, install_otlp_receiver
from ingest.otlp.credentials import CredentialReader
from ingest.sink.clickhouse import ClickHouseSink
from ingest.sink.consumer import SinkConsumer
from ingest.sink.status import SinkStatus
from meterline.kafka import create_topics, wait_for_broker
from meterline.settings import Settings
from meterline.warehouse import SharedClient, connect, migrate

__all__ = ["IngestService", "build_app", "serve"]

log = logging.getLogger(__name__)


class IngestService:
    """Connect + migrate, then run the sink on a background thread; `stop()` flushes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.status = SinkStatus()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        client = connect(settings)
        applied = migrate(client, settings.clickhouse_database)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        self.client = SharedClient(client, settings.clickhouse_database)
        self.sink = ClickHouseSink(self.client)
        self.sink.setup()
        self.consumer = SinkConsumer(settings, self.sink, status=self.status)
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
        self._thread = threading.Thread(target=self._run, name="ingest-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.consumer.run(self._stop)
        except Exception:
            log.exception("the sink loop stopped on an unexpected error")
            self.status.update(running=False, last_error="sink loop crashed; see the log")

    def _stop_sink(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("the sink did not stop within %.0fs", timeout_s)

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
