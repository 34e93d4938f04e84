"""Per-key RPM/TPM limits that hold across a fleet of gateways.

Each gateway admits a request against its own in-memory buckets (no network on the hot
path). Every `interval_s` it reports what it admitted per limited key since the last
report on the internal `rate-usage` topic (schemas/rate_usage.py), and it takes from its
own buckets what every other gateway reports. So each bucket drains at the fleet's rate,
and the fleet admits what one gateway would, plus at most what the other gateways admit
between a report and its arrival: about (interval_s + delivery) x the key's fleet-wide
rate, one `interval_s` of traffic at 0.2 s (tests/integration/gateway/
test_gateway_fleet_limits.py holds it to that on two gateways).

The same reports carry the estimated spend each gateway added to its hard budgets'
ledgers, by spend mark, so every gateway's budget guard counts the fleet's spend that no
BudgetState covers yet (gateway/budgets.py).

Reports are read from the end of the topic (old usage matters no more than a minute,
and a bucket starts full anyway) by a consumer thread with no group; they are applied
on the event loop (`call_soon_threadsafe`), where the buckets live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from gateway.budgets import BudgetGuard
from gateway.ratelimit import KeyLimiter
from meterline.kafka import consumer_config
from meterline.settings import Settings
from schemas.rate_usage import RateUsage, decode_rate_usage, encode_rate_usage
from schemas.topics import RATE_USAGE

__all__ = ["RateShare"]

log = logging.getLogger(__name__)

Emit = Callable[[str, bytes, bytes], None]
_STALE_AFTER_S = 10.0


class RateShare:
    """**Parameters:** `limiter` (this gateway's buckets), `budgets` (its budget guard),
    `emit` (the event emitter's), `clock` (the limiter's monotonic clock), `interval_s`
    (report period)."""

    def __init__(
        self,
        settings: Settings,
        limiter: KeyLimiter,
        budgets: BudgetGuard,
        emit: Emit,
        clock: Callable[[], float],
        *,
        interval_s: float = 0.2,
    ) -> None:
        self._settings = settings
        self._limiter = limiter
        self._budgets = budgets
        budgets.share_spend = True
        self._emit = emit
        self._clock = clock
        self._interval_s = interval_s
        self._topic = settings.topic(RATE_USAGE)
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="rate-share", daemon=True)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reports_applied = 0

    def start(self) -> None:
        """Inside the running loop: the report task and the reader thread."""
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._report_every_interval())
        self._thread.start()

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self.report()  # what was admitted since the last report still counts
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, 5)

    def report(self) -> None:
        taken, spend = self._limiter.drain(), self._budgets.drain_spend()
        if taken or spend:
            value = encode_rate_usage(RateUsage(self.instance, time.time(), taken, spend))
            self._emit(self._topic, self.instance.encode(), value)

    async def _report_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                self.report()
            except Exception:  # a report lost must not stop the next ones
                log.exception("rate share: report failed")

    def _apply(self, usage: RateUsage) -> None:
        self._limiter.take_reported(usage.keys, self._clock())
        self._budgets.add_reported(usage.spend)
        self.reports_applied += 1

    def _read(self) -> None:
        consumer = Consumer(consumer_config(self._settings, None, **{"fetch.wait.max.ms": 50}))
        try:
            while not self._stop.is_set() and not self._assign(consumer):
                self._stop.wait(0.5)  # topic not there yet (broker starting)
            while not self._stop.is_set():
                try:
                    message = consumer.poll(0.1)
                except KafkaException as exc:
                    log.warning("rate share: poll failed (%s)", exc)
                    continue
                if message is None or message.error() is not None:
                    continue
                if message.key() == self.instance.encode():
                    continue
                try:
                    usage = decode_rate_usage(message.value() or b"")
                except ValueError as exc:  # never trusted blindly, never fatal
                    log.warning("rate share: skipped a bad report (%s)", exc)
                    continue
                if time.time() - usage.at > _STALE_AFTER_S:
                    continue  # replayed late: that usage has long left any bucket
                if usage.gateway != self.instance and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._apply, usage)
        except RuntimeError:  # the loop closed under us at shutdown
            pass
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> bool:
        try:
            metadata = consumer.list_topics(self._topic, timeout=1.0)
        except KafkaException:
            return False
        info = metadata.topics.get(self._topic)
        if info is None or info.error is not None or not info.partitions:
            return False
        consumer.assign([TopicPartition(self._topic, p, OFFSET_END) for p in info.partitions])
        return True
