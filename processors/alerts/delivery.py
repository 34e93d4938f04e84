"""Webhook delivery: bounded queues drained by a background task, with retries.

The agents only call `WebhookSender.submit()`, which never blocks: each webhook has its
own bounded queue (the oldest alert is dropped, and counted, when it is full) and its own
delivery loop, so a slow or failing webhook delays neither the stream nor the others.
Alerts still queued when the worker stops are lost; together with the in-memory
de-duplication this makes alerts best-effort, at-least-once across restarts.

Webhook URLs are secrets (a Slack webhook URL is its own credential): logs show only
the scheme and host.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from processors.metrics import ProcessorMetrics

__all__ = ["Notification", "RetryPolicy", "WebhookSender"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notification:
    """A rendered alert body; `security` also routes it to the security webhooks."""

    body: bytes
    category: str
    security: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a webhook again: 5xx, 408, timeouts and network errors get exponential
    backoff; 429 waits for its Retry-After (capped, so one webhook cannot park its queue
    for hours); any other 4xx is permanent."""

    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 60.0

    def delay(
        self,
        retries_done: int,
        status: int | None,
        retry_after: str | None = None,
        now: datetime | None = None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to stop trying.

        `status` None means no response (timeout, connection error).
        """
        if status is not None and (status < 400 or (status < 500 and status not in (408, 429))):
            return None  # delivered, or refused for good
        if retries_done >= self.max_retries:
            return None
        if status == 429 and retry_after is not None:
            asked = _retry_after_s(retry_after, now or datetime.now(UTC))
            if asked is not None:
                return min(asked, self.max_retry_after_s)
        return min(self.base_delay_s * 2**retries_done, self.max_delay_s)


def _retry_after_s(value: str, now: datetime) -> float | None:
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


@dataclass
class _Target:
    url: str
    queue: deque[Notification] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class WebhookSender:
    """Queues per webhook and the task that delivers them (`run()`, until cancelled)."""

    def __init__(
        self,
        alert_webhooks: Iterable[str],
        security_webhooks: Iterable[str],
        metrics: ProcessorMetrics,
        *,
        timeout_s: float,
        policy: RetryPolicy,
        queue_size: int = 1000,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._policy = policy
        self._queue_size = max(queue_size, 1)
        self._transport = transport
        self._sleep = sleep
        self._all = [_Target(url) for url in dict.fromkeys(alert_webhooks)]
        known = {target.url: target for target in self._all}
        # A URL in both lists gets each alert once.
        self._security = [
            known.get(url) or _Target(url) for url in dict.fromkeys(security_webhooks)
        ]
        self._targets = list({id(t): t for t in [*self._all, *self._security]}.values())

    def submit(self, notification: Notification) -> None:
        """Queue for every webhook it is routed to; never blocks, never raises."""
        targets = [*self._all, *(self._security if notification.security else ())]
        for target in {id(t): t for t in targets}.values():
            if len(target.queue) >= self._queue_size:
                dropped = target.queue.popleft()
                self._metrics.alert("dropped", dropped.category)
                log.warning("alert queue of %s full: dropped the oldest", _where(target.url))
            target.queue.append(notification)
            target.ready.set()

    def pending(self) -> int:
        return sum(len(target.queue) for target in self._targets)

    async def run(self) -> None:
        timeout = httpx.Timeout(self._timeout_s)
        async with httpx.AsyncClient(timeout=timeout, transport=self._transport) as client:
            await asyncio.gather(*(self._drain(client, target) for target in self._targets))

    async def _drain(self, client: httpx.AsyncClient, target: _Target) -> None:
        while True:
            await target.ready.wait()
            target.ready.clear()
            while target.queue:
                notification = target.queue.popleft()
                try:
                    delivered = await self.deliver(client, target.url, notification)
                except Exception:  # a bug here must not end delivery for good
                    log.exception("alert delivery to %s failed", _where(target.url))
                    delivered = False
                self._metrics.alert("sent" if delivered else "failed", notification.category)

    async def deliver(
        self, client: httpx.AsyncClient, url: str, notification: Notification
    ) -> bool:
        """POST one alert, retrying as the policy says; True when the webhook took it."""
        retries = 0
        while True:
            status: int | None = None
            retry_after: str | None = None
            try:
                response = await client.post(
                    url,
                    content=notification.body,
                    headers={"content-type": "application/json"},
                )
                status, retry_after = response.status_code, response.headers.get("retry-after")
                problem = f"HTTP {status}"
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                log.error("alert webhook %s is not usable: %s", _where(url), exc)
                return False
            except httpx.TransportError as exc:  # timeouts, refused connections, resets
                problem = type(exc).__name__
            if status is not None and status < 300:
                return True
            wait = self._policy.delay(retries, status, retry_after)
            if wait is None:
                log.warning("alert to %s not delivered: %s", _where(url), problem)
                return False
            retries += 1
            await self._sleep(wait)


def _where(url: str) -> str:
    # Scheme and host only: the path and query of a webhook URL are its secret.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
