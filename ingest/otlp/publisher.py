"""`KafkaSpanPublisher`: SpanEvents -> the spans topic, keyed by trace id (confluent-kafka).

`publish()` returns once Kafka acknowledged every span, so an OTLP success really means
stored. Two kinds of failure, told apart so one bad span never blocks the others:
- Kafka unavailable (queue full, timeout, broker down): PublishUnavailableError, the
  exporter is told to retry (503), and the deterministic event ids make a retried span
  land only once in ClickHouse;
- a span that can never be produced (too large for the broker, unserializable): that
  span alone is refused, with the reason, in the export's partial success.
`produce()` runs on the event loop, `poll()` on one background thread (ARCHITECTURE §8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ingest.otlp.errors import PublishUnavailableError
from meterline.kafka import is_record_error, producer_config
from meterline.settings import Settings
from schemas.events.v1 import SpanEvent
from schemas.topics import SPANS

__all__ = ["KafkaSpanPublisher", "Unpublishable"]

log = logging.getLogger(__name__)

Unpublishable = tuple[SpanEvent, str]  # a span that can never be produced, and why


class KafkaSpanPublisher:
    def __init__(self, settings: Settings, **producer_overrides: Any) -> None:
        self._topic = settings.topic(SPANS)
        self._timeout_s = settings.ingest.otlp.publish_timeout_s
        self._producer = Producer(producer_config(settings, **producer_overrides))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="otlp-producer", daemon=True)
        self.spans_refused = 0  # never producible (too large, unserializable)

    def start(self) -> None:
        self._poller.start()

    async def publish(self, events: Sequence[SpanEvent]) -> list[Unpublishable]:
        """The spans that can never be produced, each with the reason; every other span
        is acknowledged by Kafka, or PublishUnavailableError is raised (retry them all)."""
        refused: list[Unpublishable] = []
        if not events:
            return refused
        loop = asyncio.get_running_loop()
        pending: list[tuple[SpanEvent, asyncio.Future[KafkaError | None]]] = []
        for event in events:
            try:
                value = event.to_json()
            except Exception as exc:  # pydantic/orjson refuse it: so would every retry
                refused.append((event, f"span cannot be serialized: {exc}"))
                continue
            future: asyncio.Future[KafkaError | None] = loop.create_future()
            try:
                self._producer.produce(
                    self._topic,
                    key=event.trace_id.encode(),
                    value=value,
                    on_delivery=_settle_from_thread(loop, future),
                )
            except KafkaException as exc:
                error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                if error is not None and is_record_error(error):
                    refused.append((event, _reason(error, len(value))))
                    continue
                _cancel(pending)
                raise PublishUnavailableError(f"Kafka is unavailable, retry later ({exc})") from exc
            except BufferError as exc:
                _cancel(pending)
                raise PublishUnavailableError(
                    f"the span queue is full, retry later ({exc})"
                ) from exc
            pending.append((event, future))
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(future for _, future in pending)), self._timeout_s
            )
        except TimeoutError as exc:
            raise PublishUnavailableError(
                f"Kafka did not acknowledge the spans within {self._timeout_s:.0f}s"
            ) from exc
        transient = None
        for (event, _), error in zip(pending, outcomes, strict=True):
            if error is None:
                continue
            if is_record_error(error):
                refused.append((event, _reason(error, None)))
            else:
                transient = error
        if transient is not None:
            raise PublishUnavailableError(f"Kafka refused a span: {transient.str()}")
        if refused:
            self.spans_refused += len(refused)
            log.warning(
                "refused %d span(s) Kafka can never take, e.g. %s", len(refused), refused[0][1]
            )
        return refused

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


def _reason(error: KafkaError, size: int | None) -> str:
    where = f" ({size} bytes)" if size is not None else ""
    return f"span cannot be stored in Kafka{where}: {error.name()}: {error.str()}"


def _settle_from_thread(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[KafkaError | None]
) -> Callable[[KafkaError | None, Message], None]:
    def on_delivery(error: KafkaError | None, message: Message) -> None:
        # RuntimeError: the loop closed while a delivery was outstanding.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, error)

    return on_delivery


def _settle(future: asyncio.Future[KafkaError | None], error: KafkaError | None) -> None:
    if not future.done():
        future.set_result(error)


def _cancel(pending: list[tuple[SpanEvent, asyncio.Future[KafkaError | None]]]) -> None:
    for _, future in pending:
        future.cancel()
