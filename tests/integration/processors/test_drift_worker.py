"""Drift in the real worker (`python -m processors`) against the real tansu broker."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from meterline.settings import Settings
from schemas.events.v1 import Anomaly, DeadLetter, DriftReport, RequestEvent
from schemas.topics import ANOMALIES, DLQ, DRIFT, REQUESTS
from tests.conftest import free_port
from tests.integration.processors.worker_helpers import Record, TopicReader, produce, worker_process
from tests.unit.processors.drift.test_logic import REPORTS_PER_WINDOW, T0, Shift, traffic

pytestmark = pytest.mark.integration

WINDOW = 200
SHIFTED_SCOPE = "app:shop/model:gpt-4o-mini"
STABLE_SCOPE = "app:bot/model:gpt-4o-mini"


def keyed(events: list[RequestEvent], key: bytes) -> list[Record]:
    # One message key per scope: one partition, so each scope's windows arrive in order.
    return [(key, event.to_json()) for event in events]


def test_only_the_shifted_scope_drifts_and_alerts_once(
    broker: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        broker,
        processors_port=free_port(),
        processors={"drift": {"window_events": WINDOW, "min_events": WINDOW // 2, "window_s": 0}},
    )
    later = T0 + timedelta(days=1)
    shop = traffic(1, WINDOW, app="shop") + traffic(
        2, WINDOW, app="shop", shift=Shift(prompt_scale=3.0, code=True), start=later
    )
    bot = traffic(3, WINDOW, app="bot") + traffic(4, WINDOW, app="bot", start=later)
    bad_signature = orjson.loads(bot[0].to_json()) | {"prompt_signature": "not hex"}
    garbage: list[Record] = [
        (b"bot", orjson.dumps(bad_signature)),  # only drift reads the signature
        (b"bot", b"\xff not a request"),  # the cost agent dead-letters this one
    ]
    produce(settings, REQUESTS, keyed(shop, b"shop") + garbage + keyed(bot, b"bot"))
    log_path = tmp_path / "worker.log"
    reader = TopicReader(settings, [DRIFT, ANOMALIES, DLQ])
    drift, anomalies, dlq = (reader.records[settings.topic(n)] for n in (DRIFT, ANOMALIES, DLQ))

    with worker_process(settings, log_path) as worker:
        reader.read_until(
            lambda: len(drift) >= 2 * REPORTS_PER_WINDOW and anomalies and len(dlq) >= 2,
            timeout_s=90,
            log=log_path,
        )
        deadline = time.monotonic() + 1.0  # a duplicate alert would follow right away
        reader.read_until(lambda: time.monotonic() > deadline, timeout_s=5, log=log_path)
        metrics = httpx.get(f"http://{settings.host}:{settings.processors_port}/metrics").text
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    reader.close()

    reports = [(key, DriftReport.model_validate_json(value)) for key, value in drift]
    assert len(reports) == 2 * REPORTS_PER_WINDOW
    assert {key for key, _ in reports} == {SHIFTED_SCOPE.encode(), STABLE_SCOPE.encode()}
    assert all(key == report.scope.encode() for key, report in reports)
    drifted = {(r.scope, r.metric) for _, r in reports if r.drifted}
    assert drifted == {
        (SHIFTED_SCOPE, "prompt_chars"),
        (SHIFTED_SCOPE, "input_tokens"),
        (SHIFTED_SCOPE, "prompt_signature"),
    }
    shifted_window = {
        (r.window_start, r.window_end) for _, r in reports if r.scope == SHIFTED_SCOPE
    }
    assert shifted_window == {(shop[WINDOW].ts_end, shop[-1].ts_end)}

    [(key, value)] = anomalies
    alert = Anomaly.model_validate_json(value)
    assert key == f"scope:{SHIFTED_SCOPE}".encode() == alert.subject.encode()
    assert alert.kind == "drift" and alert.severity == "high"
    assert alert.signals == ["input_tokens", "prompt_chars", "prompt_signature"]
    assert alert.evidence["window_events"] == alert.evidence["reference_events"] == WINDOW

    letters = sorted((DeadLetter.model_validate_json(value) for _, value in dlq), key=str)
    assert sorted(letter.stage for letter in letters) == ["processors.cost", "processors.drift"]
    [signature_letter] = [letter for letter in letters if letter.stage == "processors.drift"]
    assert "prompt_signature" in signature_letter.error
    assert signature_letter.original_topic == settings.topic(REQUESTS)
    total = len(shop) + len(bot) + len(garbage)
    # Every request is routed by its scope; what parses goes on to the scope's windows.
    assert f'meterline_processors_events_processed_total{{agent="drift_route"}} {total}' in metrics
    windowed = len(shop) + len(bot)
    assert f'meterline_processors_events_processed_total{{agent="drift"}} {windowed}' in metrics
