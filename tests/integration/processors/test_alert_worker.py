"""Alerts in the real worker (`python -m processors`) against the real tansu broker, sent to
a real local HTTP receiver with a healthy, a security, a failing and a slow endpoint."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from meterline.settings import Settings
from schemas.events.v1 import (
    Anomaly,
    BudgetState,
    DeadLetter,
    EnforcementDecision,
    RequestEvent,
)
from schemas.topics import ANOMALIES, BUDGETS, COSTS, DLQ, ENFORCEMENT, REQUESTS
from tests.conftest import free_port
from tests.integration.processors.worker_helpers import (
    Record,
    TopicReader,
    produce,
    worker_process,
)

pytestmark = pytest.mark.integration

SLOW_S = 10.0


class Receiver:
    """A real HTTP server on 127.0.0.1 recording the JSON bodies POSTed to each path:
    /healthy and /security answer 200, /failing always 500, /slow after SLOW_S."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.attempts[self.path] += 1
                if self.path == "/slow":
                    time.sleep(SLOW_S)
                status = 500 if self.path == "/failing" else 200
                if status == 200:
                    with receiver._lock:
                        receiver.bodies[self.path].append(orjson.loads(body))
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True  # a sleeping /slow handler must not block close
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"

    def texts(self, path: str) -> list[str]:
        with self._lock:
            return [body["text"] for body in self.bodies[path]]

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)


def budget_state(status: str, spent: str) -> Record:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    state = BudgetState(
        budget_id="b1",
        subject="key:k1",
        period="day",
        period_start=today,
        period_end=today + timedelta(days=1),
        spent_usd=Decimal(spent),
        limit_usd=Decimal(10),
        percent_used=float(Decimal(spent) * 10),
        status=status,  # type: ignore[arg-type]
        source="processors.budgets",
    )
    return b"b1", state.to_json()


def request_event(index: int) -> Record:
    now = datetime.now(UTC)
    event = RequestEvent(
        request_id=f"req-{index}",
        ts_start=now,
        ts_end=now,
        latency_ms=10.0,
        key_id="k9",
        org="acme",
        provider="openai",
        model_used="gpt-4o-mini",
        endpoint="/v1/chat/completions",
        status_code=200,
        input_tokens=100,
        output_tokens=10,
    )
    return b"k9", event.to_json()


def test_crossings_decisions_and_one_alert_per_anomaly_burst_despite_bad_webhooks(
    broker: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    receiver = Receiver()
    settings = make_settings(
        broker,
        processors_port=free_port(),
        processors={
            "alert": {
                # the bad endpoints first: they must not hold back the healthy one
                "webhooks": [
                    f"{receiver.base}/slow",
                    f"{receiver.base}/failing",
                    f"{receiver.base}/healthy",
                ],
                "security_webhooks": [f"{receiver.base}/security"],
                "timeout_s": SLOW_S + 5,  # /slow answers, late: each alert holds its queue 10 s
                "max_retries": 2,
            }
        },
        dashboard_url="http://127.0.0.1:8501",
    )
    produce(
        settings,
        BUDGETS,
        [
            budget_state(*s)
            for s in [("ok", "1"), ("soft", "8.5"), ("soft", "9"), ("hard", "10.5"), ("hard", "11")]
        ],
    )
    block = EnforcementDecision(
        subject="key:k2",
        action="block",
        reason="llmjacking: 40 distinct models in 60 s",
        source="llmjacking",
    )
    decision_key = b"llmjacking|key:k2"
    produce(
        settings,
        ENFORCEMENT,
        [(decision_key, block.to_json()), (decision_key, block.to_json()), (decision_key, None)],
    )
    burst = [
        Anomaly(
            kind="llmjacking",
            subject="key:k3",
            score=0.9 + index / 1000,
            severity="critical",
            signals=["40 distinct models in 60 s"],
            evidence={"client_ip": "203.0.113.9"},
            source="processors.llmjacking",
        )
        for index in range(20)
    ]
    produce(
        settings, ANOMALIES, [(b"key:k3", a.to_json()) for a in burst] + [(b"key:k3", b"{broken")]
    )
    produce(settings, REQUESTS, [request_event(index) for index in range(5)])
    log_path = tmp_path / "worker.log"
    reader = TopicReader(settings, [COSTS, DLQ])
    metrics_url = f"http://{settings.host}:{settings.processors_port}/metrics"
    suppressed = 'meterline_processors_alerts_total{category="anomaly",outcome="suppressed"} 19.0'
    slow_when_healthy_done: list[int] = []

    def healthy_done() -> bool:
        done = len(receiver.texts("/healthy")) >= 5 and len(receiver.texts("/security")) >= 3
        if done and not slow_when_healthy_done:
            slow_when_healthy_done.append(receiver.attempts["/slow"])
        return done

    def everything() -> bool:
        return (
            healthy_done()
            and len(reader.records[settings.topic(COSTS)]) >= 5
            and len(reader.records[settings.topic(DLQ)]) >= 1
            and receiver.attempts["/failing"] >= 3
            and suppressed in httpx.get(metrics_url).text
        )

    with receiver.running(), worker_process(settings, log_path) as worker:
        reader.read_until(everything, timeout_s=60, log=log_path)
        time.sleep(1)  # anything wrongly sent late would arrive now
        healthy, security = receiver.texts("/healthy"), receiver.texts("/security")
        metrics = httpx.get(metrics_url).text
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    reader.close()

    # one alert per crossing, per new decision, per lift, and ONE for 20 anomalies
    assert len(healthy) == 5, healthy
    budget = [text for text in healthy if "Budget" in text]
    assert len(budget) == 2
    assert budget[0].startswith("[MEDIUM] Budget soft limit reached: key:k1")
    assert "8.5 of 10 USD (85.0%)" in budget[0]
    assert budget[1].startswith("[HIGH] Budget exhausted: key:k1")
    (blocked,) = [text for text in healthy if "Blocked key:k2" in text]
    assert "meterline unblock key:k2" in blocked and "rotate it" in blocked
    assert "http://127.0.0.1:8501/security?subject=key%3Ak2" in blocked
    (lifted,) = [text for text in healthy if "Lifted" in text]
    assert "Lifted the block of key:k2" in lifted
    (anomaly,) = [text for text in healthy if "LLMjacking suspected" in text]
    assert anomaly.startswith("[CRITICAL] LLMjacking suspected on key:k3")
    assert "security?subject=key%3Ak3" in anomaly
    # security webhook: the anomaly and the llmjacking decision and its lift, no budgets
    assert sorted(text.split(":")[0] for text in security) == [
        "[CRITICAL] LLMjacking suspected on key",
        "[HIGH] Blocked key",
        "[LOW] Lifted the block of key",
    ]
    full = receiver.bodies["/healthy"][0]
    assert set(full) == {"text", "blocks"} and full["blocks"][0]["type"] == "header"

    # the slow webhook had not got through its queue when the healthy one had everything
    assert slow_when_healthy_done[0] < 5
    assert re.search(r'alerts_total\{category="\w+",outcome="failed"\} ', metrics)  # retried
    assert 'meterline_processors_alerts_total{category="anomaly",outcome="sent"}' in metrics
    (_, letter_value), *_ = reader.records[settings.topic(DLQ)]
    letter = DeadLetter.model_validate_json(letter_value or b"")
    assert letter.stage == "processors.alerts" and "invalid Anomaly" in letter.error
    assert letter.original_topic == settings.topic(ANOMALIES)
