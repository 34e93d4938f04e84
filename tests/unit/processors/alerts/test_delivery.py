"""Webhook delivery: the retry policy and the queues (httpx's MockTransport, no network)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest
from tenacity import Retrying

from processors.alerts.delivery import Answer, Notification, RetryPolicy, WebhookSender
from processors.metrics import ProcessorMetrics

POLICY = RetryPolicy(max_retries=3, base_delay_s=0.5, max_delay_s=1.5, max_retry_after_s=60)
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
HEALTHY = "http://127.0.0.1:1/healthy"
FAILING = "http://127.0.0.1:1/failing"
SECURITY = "http://127.0.0.1:1/security"


# --- the policy -----------------------------------------------------------------------


def sleeps(policy: RetryPolicy, *answers: Answer) -> tuple[list[float], Answer]:
    """Run the policy's tenacity loop over scripted answers: the sleeps asked, the result."""
    asked: list[float] = []
    script = iter(answers)
    result = Retrying(**policy.strategies(now=lambda: NOW), sleep=asked.append)(
        lambda: next(script)
    )
    return asked, result


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, None])
def test_server_errors_timeouts_and_network_errors_back_off_exponentially(
    status: int | None,
) -> None:
    asked, last = sleeps(POLICY, *[Answer(status)] * 10)

    assert asked == [0.5, 1.0, 1.5]  # capped at max_delay_s, then give up
    assert last == Answer(status)


@pytest.mark.parametrize("status", [200, 204, 301, 400, 401, 403, 404, 410, 422])
def test_success_redirects_and_client_errors_are_never_retried(status: int) -> None:
    assert sleeps(POLICY, Answer(status), Answer(200)) == ([], Answer(status))


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        ("7", 7.0),
        ("Mon, 10 Mar 2025 12:00:20 GMT", 20.0),
        ("Mon, 10 Mar 2025 11:00:00 GMT", 0.0),
        ("86400", 60.0),  # one webhook cannot park its queue
    ],
)
def test_429_honours_retry_after_seconds_and_dates_within_a_cap(
    retry_after: str, wait: float
) -> None:
    assert sleeps(POLICY, Answer(429, retry_after), Answer(200)) == ([wait], Answer(200))


def test_429_without_a_readable_retry_after_backs_off_and_gives_up_like_the_rest() -> None:
    unreadable = (Answer(503), Answer(429, "soon"), Answer(429), Answer(429, "1"))

    assert sleeps(POLICY, *unreadable, Answer(200)) == ([0.5, 1.0, 1.5], Answer(429, "1"))


def test_no_retries_configured_means_one_attempt() -> None:
    assert sleeps(RetryPolicy(max_retries=0), Answer(503), Answer(200)) == ([], Answer(503))


# --- the sender -----------------------------------------------------------------------


class Receiver:
    """Answers per URL path; records what arrived and the sleeps the sender asked for."""

    def __init__(self, answers: dict[str, list[int | Exception]]) -> None:
        self.answers = answers
        self.bodies: dict[str, list[bytes]] = {path: [] for path in answers}
        self.attempts: Counter[str] = Counter()
        self.sleeps: list[float] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.attempts[path] += 1
        script = self.answers[path]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        if answer < 300:
            self.bodies[path].append(request.content)
        headers = {"retry-after": "2"} if answer == 429 else {}
        return httpx.Response(answer, headers=headers)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def sender(receiver: Receiver, metrics: ProcessorMetrics, **overrides: object) -> WebhookSender:
    values: dict[str, object] = {
        "timeout_s": 1.0,
        "policy": POLICY,
        "transport": httpx.MockTransport(receiver.handler),
        "sleep": receiver.sleep,
    }
    values.update(overrides)
    return WebhookSender(
        [FAILING, HEALTHY],
        [SECURITY, HEALTHY],
        metrics,
        **values,  # type: ignore[arg-type]
    )


async def run_until(condition: object, webhooks: WebhookSender) -> None:
    task = asyncio.create_task(webhooks.run())
    try:
        async with asyncio.timeout(5):
            while not condition():  # type: ignore[operator]
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_retries_then_delivers_and_routes_security_alerts() -> None:
    receiver = Receiver(
        {
            "/failing": [503, httpx.ConnectTimeout("slow"), 429, 200],
            "/healthy": [200],
            "/security": [200],
        }
    )
    metrics = ProcessorMetrics()
    webhooks = sender(receiver, metrics)

    webhooks.submit(Notification(b'{"text": "budget"}', "budget"))
    webhooks.submit(Notification(b'{"text": "anomaly"}', "anomaly", security=True))
    await run_until(lambda: len(receiver.bodies["/failing"]) == 2, webhooks)

    assert receiver.bodies["/healthy"] == [b'{"text": "budget"}', b'{"text": "anomaly"}']
    assert receiver.bodies["/security"] == [b'{"text": "anomaly"}']
    assert receiver.attempts["/failing"] == 5  # 503, timeout, 429, then 200 twice
    assert receiver.sleeps == [0.5, 1.0, 2.0]  # backoff, backoff, Retry-After
    assert metrics.alerts == {("sent", "budget"): 2, ("sent", "anomaly"): 3}


async def test_gives_up_after_max_retries_and_on_client_errors() -> None:
    receiver = Receiver({"/failing": [500], "/healthy": [404], "/security": [200]})
    metrics = ProcessorMetrics()
    webhooks = sender(receiver, metrics)

    webhooks.submit(Notification(b"{}", "enforcement"))
    await run_until(lambda: metrics.alerts[("failed", "enforcement")] == 2, webhooks)

    assert receiver.attempts == {"/failing": 4, "/healthy": 1}
    assert "/security" not in receiver.attempts


async def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    receiver = Receiver({"/failing": [200], "/healthy": [200], "/security": [200]})
    metrics = ProcessorMetrics()
    webhooks = sender(receiver, metrics, queue_size=2)

    for index in range(5):  # nothing drains: the delivery task is not running
        webhooks.submit(Notification(str(index).encode(), "anomaly", security=True))

    assert webhooks.pending() == 6  # 2 per webhook
    assert metrics.alerts[("dropped", "anomaly")] == 9
    await run_until(
        lambda: webhooks.pending() == 0 and len(receiver.bodies["/security"]) == 2, webhooks
    )
    assert receiver.bodies["/healthy"] == [b"3", b"4"]


async def test_an_unusable_url_fails_without_retries() -> None:
    metrics = ProcessorMetrics()
    webhooks = WebhookSender(["ftp://127.0.0.1/hook"], [], metrics, timeout_s=1.0, policy=POLICY)

    webhooks.submit(Notification(b"{}", "budget"))
    await run_until(lambda: webhooks.pending() == 0, webhooks)
    await asyncio.sleep(0)

    assert metrics.alerts == {("failed", "budget"): 1}
