"""Every record the processors send goes through one confluent-kafka producer.

librdkafka batches, sends and retries on its own threads: `send` only enqueues (~2 us);
Faust's aiokafka sends took ~17% of the worker's samples in the profile of 4589408
(their Python send path and a socket write per small produce request). The batch loop
(processors/batches.py) calls `flush` after each batch and commits the batch's offsets
only when every output sent until then was acknowledged (`failures` did not move):
at-least-once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, Producer

from meterline.kafka import producer_config
from meterline.settings import Settings

__all__ = ["OutputTopic", "Outputs"]

log = logging.getLogger(__name__)

_LINGER_MS = 5  # adds at most 5 ms to an output's latency
_FULL_QUEUE_WAIT_S = 0.05


class Outputs:
    """The worker's one producer. Failed deliveries are counted, never silently lost."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer = Producer(
            producer_config(
                settings,
                **{
                    "linger.ms": _LINGER_MS,
                    "delivery.report.only.error": True,  # no callback per good record
                    "on_delivery": self._on_delivery,
                },
            )
        )
        self._lock = threading.Lock()
        self.failures = 0  # deliveries that failed since start

    def topic(self, name: str) -> OutputTopic:
        """`name`: a base name from schemas.topics."""
        return OutputTopic(self, self._settings.topic(name))

    def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, partition)
                return
            except BufferError:  # librdkafka's queue is full: let it drain a little
                self._producer.poll(_FULL_QUEUE_WAIT_S)

    def flush(self, timeout_s: float) -> bool:
        """Blocks until every record sent so far is acknowledged; False if one is not."""
        left = self._producer.flush(timeout_s)
        if left:
            log.warning("%d output(s) not acknowledged within %.0f s", left, timeout_s)
        return left == 0

    def _on_delivery(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            with self._lock:
                self.failures += 1
            log.warning("output not delivered: %s", error)


class OutputTopic:
    """A topic records are sent to (keys and values as raw bytes)."""

    def __init__(self, outputs: Outputs, name: str) -> None:
        self._outputs = outputs
        self.name = name

    def get_topic_name(self) -> str:
        return self.name

    async def send(
        self, key: bytes | None = None, value: bytes | None = None, partition: int | None = None
    ) -> None:
        """Enqueues one record (the batch loop waits for its acknowledgement)."""
        self._outputs.produce(self.name, key, value, -1 if partition is None else partition)
