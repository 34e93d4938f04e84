"""`KafkaSpanPublisher`: SpanEvents -> the spans topic, keyed by trace id (confluent-kafka).

`publish()` returns once Kafka acknowledged every span, so an OTLP success really means
stored; on failure the exporter is told to retry (503), and the deterministic event ids
make a retried span land only once in ClickHouse. `produce()` runs on the event loop,
`poll()` on one background thread (ARCHITECTURE §8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ingest.otlp.errors import PublishUnavailableError
from meterline.kafka import producer_config
from meterline.settings import Settings
from schemas.events.v1 import SpanEvent
from schemas.topics import SPANS

__all__ = ["KafkaSpanPublisher"]

log = logging.getLogger(__name__)


class KafkaSpanPublisher:
    def __init__(self, settings: Settings) -> None:
        self._topic = settings.topic(SPANS)
        self._timeout_s = settings.otlp_publish_timeout_s
        self._producer = Producer(producer_config(settings))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="otlp-producer", daemon=True)

    def start(self) -> None:
        self._poller.start()

    async def publish(self, events: Sequence[SpanEvent]) -> None:
        if not events:
            return
        loop = asyncio.get_running_loop()
        pending: list[asyncio.Future[None]] = []
        try:
            for event in events:
                future: asyncio.Future[None] = loop.create_future()
                self._producer.produce(
                    self._topic,
                    key=event.trace_id.encode(),
                    value=event.to_json(),
                    on_delivery=_settle_from_thread(loop, future),
                )
                pending.append(future)
        except (BufferError, KafkaException) as exc:
            _cancel(pending)
            raise PublishUnavailableError(f"the span queue is full, retry later ({exc})") from exc
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*pending, return_exceptions=True), self._timeout_s
            )
        except TimeoutError as exc:
            raise PublishUnavailableError(
                f"Kafka did not acknowledge the spans within {self._timeout_s:.0f}s"
            ) from exc
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failure is not None:
            raise failure

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def close(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._poller.is_alive():
            self._poller.join(timeout_s)
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.error("%d spans were not delivered before shutdown", remaining)


def _settle_from_thread(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]
) -> Callable[[KafkaError | None, Message], None]:
    def on_delivery(error: KafkaError | None, message: Message) -> None:
        # RuntimeError: the loop closed while a delivery was outstanding.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, error)

    return on_delivery


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(PublishUnavailableError(f"Kafka refused a span: {error.str()}"))


def _cancel(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        future.cancel()
