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
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.wait import wait_base

from processors.metrics import ProcessorMetrics

__all__ = ["Answer", "Notification", "RetryPolicy", "WebhookSender"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notification:
    """A rendered alert body; `security` also routes it to the security webhooks."""

    body: bytes
    category: str
    security: bool = False


@dataclass(frozen=True)
class Answer:
    """What one POST got: a status (None: no response at all) and its Retry-After."""

    status: int | None
    retry_after: str | None = None
    problem: str = ""

    @property
    def delivered(self) -> bool:
        return self.status is not None and self.status < 300

    @property
    def retryable(self) -> bool:
        """5xx, 408, 429 and no response are worth another try; any other 4xx is not."""
        return self.status is None or self.status >= 500 or self.status in (408, 429)


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a webhook again: 5xx, 408, timeouts and network errors get exponential
    backoff; 429 waits for its Retry-After (capped, so one webhook cannot park its queue
    for hours); any other 4xx is permanent. tenacity runs the loop (`strategies()`)."""

    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 60.0

    def strategies(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> dict[str, Any]:
        """tenacity keyword arguments for a loop over `Answer`s; add `sleep=`."""
        backoff = wait_exponential(multiplier=self.base_delay_s, max=self.max_delay_s)
        return {
            "retry": retry_if_result(lambda answer: answer.retryable),
            "stop": stop_after_attempt(self.max_retries + 1),
            "wait": _RetryAfterOr(backoff, self.max_retry_after_s, now),
            "retry_error_callback": lambda state: state.outcome.result(),  # the last Answer
        }


class _RetryAfterOr(wait_base):
    """A 429's Retry-After (seconds or an HTTP date, capped), else the fallback backoff."""

    def __init__(self, fallback: wait_base, cap_s: float, now: Callable[[], datetime]) -> None:
        self._fallback, self._cap_s, self._now = fallback, cap_s, now

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        answer = outcome.result() if outcome is not None and not outcome.failed else None
        if isinstance(answer, Answer) and answer.status == 429 and answer.retry_after:
            asked = _retry_after_s(answer.retry_after, self._now())
            if asked is not None:
                return min(asked, self._cap_s)
        return float(self._fallback(retry_state))


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
        try:
            answer: Answer = await AsyncRetrying(**self._policy.strategies(), sleep=self._sleep)(
                self._post, client, url, notification
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            log.error("alert webhook %s is not usable: %s", _where(url), exc)
            return False
        if not answer.delivered:
            log.warning("alert to %s not delivered: %s", _where(url), answer.problem)
        return answer.delivered

    @staticmethod
    async def _post(client: httpx.AsyncClient, url: str, notification: Notification) -> Answer:
        """One attempt. A misconfigured URL raises (no retry); a network failure is an
        Answer without a status (retried)."""
        try:
            response = await client.post(
                url, content=notification.body, headers={"content-type": "application/json"}
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise  # (UnsupportedProtocol is a TransportError too: never retried)
        except httpx.TransportError as exc:  # timeouts, refused connections, resets
            return Answer(None, problem=type(exc).__name__)
        status = response.status_code
        return Answer(status, response.headers.get("retry-after"), f"HTTP {status}")


def _where(url: str) -> str:
    # Scheme and host only: the path and query of a webhook URL are its secret.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
