"""The real worker (`python -m processors`) against the real tansu broker."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from meterline.settings import PriceOverride, Settings
from processors.cost.logic import price_request
from schemas.events.v1 import CostEvent, DeadLetter, RequestEvent
from schemas.topics import COSTS, DLQ, REQUESTS
from tests.conftest import free_port
from tests.integration.processors.worker_helpers import (
    Record,
    TopicReader,
    produce,
    worker_process,
)

pytestmark = pytest.mark.integration

OVERRIDES = {
    "local-llama": PriceOverride(
        name="selfhost", input_mtok=Decimal("0.2"), output_mtok=Decimal("0.4")
    )
}
# (provider, model) pairs cycled through the valid requests.
MODELS: list[tuple[str | None, str | None]] = [
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("mock", "gemini-2.5-pro"),
    ("vllm", "local-llama"),
    ("vllm", "unknown-model"),
    (None, None),  # rejected before routing
]


def request_event(index: int) -> RequestEvent:
    provider, model = MODELS[index % len(MODELS)]
    now = datetime.now(UTC)
    return RequestEvent(
        request_id=f"req-{index}",
        ts_start=now,
        ts_end=now,
        latency_ms=12.5,
        key_id=f"key-{index % 3}",
        org="acme",
        team="search",
        provider=provider,
        model_used=model,
        endpoint="/v1/chat/completions",
        status_code=200 if model else 400,
        input_tokens=1000 + index if model else 0,
        output_tokens=100 + index if model else 0,
        cache_read_tokens=100 if model else 0,
    )


def test_prices_every_request_and_dead_letters_garbage(
    broker: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(broker, processors_port=free_port(), price_overrides=OVERRIDES)
    events = [request_event(index) for index in range(12)]
    missing_field = orjson.loads(events[0].to_json())
    del missing_field["request_id"]
    wrong_type = orjson.loads(events[1].to_json()) | {"input_tokens": "many"}
    bad_usage = orjson.loads(events[2].to_json()) | {"input_tokens": 5, "cache_read_tokens": 50}
    garbage: list[Record] = [
        (b"key-0", b"\xff\x00 this is not json"),
        (b"key-1", orjson.dumps(missing_field)),
        (b"key-2", orjson.dumps(wrong_type)),
        (b"key-0", orjson.dumps(bad_usage)),
    ]
    items: list[Record] = []
    for index, event in enumerate(events):
        items.append((event.key_id.encode() if event.key_id else None, event.to_json()))
        if index % 3 == 1:  # garbage between valid requests, the last one followed by more
            items.append(garbage[index // 3])
    produce(settings, REQUESTS, items)
    log_path = tmp_path / "worker.log"
    reader = TopicReader(settings, [COSTS, DLQ])

    with worker_process(settings, log_path) as worker:
        reader.read_until(
            lambda: (
                len(reader.records[settings.topic(COSTS)]) >= len(events)
                and len(reader.records[settings.topic(DLQ)]) >= len(garbage)
            ),
            timeout_s=60,
            log=log_path,
        )
        metrics_url = f"http://{settings.host}:{settings.processors_port}/metrics"
        caught_up = (
            f'meterline_processors_consumer_lag_messages{{topic="{settings.topic(REQUESTS)}"}} 0.0'
        )
        deadline = time.monotonic() + 15
        while caught_up not in (metrics := httpx.get(metrics_url).text):  # sampled each second
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
        # Healthy once its broker probe (every few seconds, in a thread) has answered.
        health_url = f"http://{settings.host}:{settings.processors_port}/healthz"
        while (health := httpx.get(health_url)).status_code != 200:
            assert time.monotonic() < deadline + 15, health.text
            time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    reader.close()

    costs = [
        (key, CostEvent.model_validate_json(value))
        for key, value in reader.records[settings.topic(COSTS)]
    ]
    assert Counter(cost.request_id for _, cost in costs) == {e.request_id: 1 for e in events}
    by_request = {cost.request_id: (key, cost) for key, cost in costs}
    for event in events:
        key, cost = by_request[event.request_id]
        expected = price_request(event, OVERRIDES)
        assert key == (event.key_id or "").encode()
        assert cost.event_id == event.event_id
        assert cost.total_cost == expected.total_cost
        assert cost.priced == expected.priced
        assert cost.price_source == expected.price_source
    gpt = by_request["req-0"][1]
    # gpt-4o-mini: 900 uncached x 0.15 + 100 cached x 0.075 + 100 output x 0.60 per MTok.
    assert gpt.total_cost == Decimal("0.0002025") and gpt.priced
    assert by_request["req-3"][1].price_source == "override:selfhost"
    assert by_request["req-4"][1].priced is False
    rejected = by_request["req-5"][1]  # a 400 with no model never reached a provider
    assert rejected.rejected and rejected.model is None and rejected.total_cost == 0
    assert rejected.price_source == "rejected"

    letters = [
        (key, DeadLetter.model_validate_json(value))
        for key, value in reader.records[settings.topic(DLQ)]
    ]
    assert len(letters) == len(garbage)
    reasons = sorted(letter.error for _, letter in letters)
    assert any("Invalid JSON" in reason for reason in reasons)
    assert any("request_id" in reason and "Field required" in reason for reason in reasons)
    assert any("input_tokens" in reason and "integer" in reason for reason in reasons)
    assert any("cache_read_tokens" in reason for reason in reasons)
    for key, letter in letters:
        assert letter.original_topic == settings.topic(REQUESTS)
        assert letter.original_offset is not None and letter.stage == "processors.cost"
        assert key == (letter.original_key or "").encode() and key is not None
    assert {letter.payload for _, letter in letters} >= {"\ufffd\x00 this is not json"}

    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert "meterline_processors_costs_emitted_total 12" in metrics
    assert 'meterline_processors_dead_letters_total{stage="processors.cost"} 4' in metrics
    assert 'meterline_processors_unpriced_total{model="unknown-model"} 2' in metrics
    assert 'meterline_processors_events_processed_total{agent="cost"} 16' in metrics
    ages = [
        line
        for line in metrics.splitlines()
        if line.startswith(
            f'meterline_processors_batch_age_seconds{{topic="{settings.topic(REQUESTS)}"}}'
        )
    ]
    assert ages and 0 <= float(ages[0].rsplit(" ", 1)[1]) < 120, ages  # produced just before


def test_every_request_is_priced_across_a_kill_9(
    broker: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(broker, processors_port=free_port())
    events = [request_event(index) for index in range(400)]
    half = len(events) // 2
    log_path = tmp_path / "worker.log"
    reader = TopicReader(settings, [COSTS])
    costs = reader.records[settings.topic(COSTS)]
    produce(
        settings, REQUESTS, [(e.key_id.encode(), e.to_json()) for e in events[:half] if e.key_id]
    )

    with worker_process(settings, log_path) as worker:
        reader.read_until(lambda: len(costs) > 0, timeout_s=60, log=log_path)
        worker.kill()  # SIGKILL mid-stream: no commit, no clean shutdown
        worker.wait(timeout=10)
    produce(
        settings, REQUESTS, [(e.key_id.encode(), e.to_json()) for e in events[half:] if e.key_id]
    )

    def all_priced() -> bool:
        return len({CostEvent.model_validate_json(value).request_id for _, value in costs}) == len(
            events
        )

    with worker_process(settings, log_path) as worker:
        reader.read_until(all_priced, timeout_s=90, log=log_path)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    reader.close()

    # Duplicates are allowed (at-least-once) but must be byte-identical, same event_id.
    seen: dict[str, bytes] = {}
    for _, value in costs:
        cost = CostEvent.model_validate_json(value)
        assert seen.setdefault(cost.request_id, value) == value
    expected_ids = {event.request_id: event.event_id for event in events}
    assert {request_id: orjson.loads(value)["event_id"] for request_id, value in seen.items()} == (
        expected_ids
    )
