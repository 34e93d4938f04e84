"""Re-costing what the warehouse holds without a cost: priced exactly as the cost agent
prices (same CostEvent, same event id), rejects skipped, every page of the read API read."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from meterline.clients import ApiError, AsyncReadClient
from meterline.settings import PriceOverride
from processors.cost.logic import Pricer, PricingError, cost_for_payload
from processors.cost.recost import fetch_uncosted, recost
from schemas.events.v1 import CostEvent, RequestEvent

TS = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)


def request(n: int, **overrides: Any) -> RequestEvent:
    values: dict[str, Any] = {
        "request_id": f"req-{n}",
        "ts": TS + timedelta(seconds=n, milliseconds=900),
        "ts_start": TS + timedelta(seconds=n),
        "ts_end": TS + timedelta(seconds=n, milliseconds=800),
        "latency_ms": 800.0,
        "key_id": f"key-{n % 2}",
        "org": "acme",
        "team": "search",
        "project": "bot",
        "user": "ann",
        "session_id": "sess-1",
        "provider": "openai",
        "model_used": "gpt-4o-mini",
        "endpoint": "/v1/chat/completions",
        "status_code": 200,
        "input_tokens": 1000 + n,
        "output_tokens": 300,
        "cache_read_tokens": 200,
    }
    values.update(overrides)
    return RequestEvent(**values)


class Emitted:
    def __init__(self) -> None:
        self.costs: list[CostEvent] = []

    async def __call__(self, cost: CostEvent) -> None:
        self.costs.append(cost)


@pytest.fixture
def pricer() -> Pricer:
    override = PriceOverride(name="house", input_mtok=Decimal(1), output_mtok=Decimal(2))
    return Pricer({"house-llm": override})


async def test_prices_exactly_like_the_cost_agent(pricer: Pricer) -> None:
    events = [
        request(1),
        request(2, model_used="gpt-4o", cache_read_tokens=0, cache_write_tokens=0),
        request(3, model_used="house-llm", provider="vllm"),  # an override
        request(4, model_used="no-such-model", provider="local"),  # unpriced, not dropped
        request(5, model_used=None, model_requested="gpt-4o-mini"),
    ]
    payloads = [event.to_json() for event in events]
    emitted = Emitted()
    assert await recost(payloads, pricer, emitted) == len(events)
    assert emitted.costs == [cost_for_payload(p, pricer) for p in payloads]
    assert [c.event_id for c in emitted.costs] == [e.event_id for e in events]
    assert [c.request_id for c in emitted.costs] == [e.request_id for e in events]
    assert all(c.total_cost > 0 for c in emitted.costs[:3] + emitted.costs[4:])
    assert emitted.costs[2].price_source == "override:house"
    assert not emitted.costs[3].priced and emitted.costs[3].total_cost == 0


async def test_a_rejected_payload_is_skipped_and_the_rest_priced(pricer: Pricer, caplog) -> None:
    contradictory = request(2, input_tokens=100, cache_read_tokens=500).to_json()
    with pytest.raises(PricingError):  # what the agent dead-letters
        cost_for_payload(contradictory, pricer)
    good = [request(1), request(3)]
    payloads = [good[0].to_json(), contradictory, b'{"not": "a request"}', good[1].to_json()]
    emitted = Emitted()
    caplog.set_level(logging.WARNING, logger="processors.cost.recost")

    assert await recost(payloads, pricer, emitted) == 2
    assert [c.event_id for c in emitted.costs] == [e.event_id for e in good]
    warnings = [r.getMessage() for r in caplog.records if r.name == "processors.cost.recost"]
    assert len(warnings) == 2
    assert "cache" in warnings[0] and "invalid RequestEvent" in warnings[1]


async def test_an_emit_failure_is_not_swallowed(pricer: Pricer) -> None:
    async def broken(cost: CostEvent) -> None:
        raise RuntimeError("producer closed")

    with pytest.raises(RuntimeError):  # only pricing rejections are skipped
        await recost([request(1).to_json()], pricer, broken)


async def test_fetch_uncosted_follows_the_cursor_across_pages() -> None:
    events = [request(n) for n in range(5)]
    seen: list[dict[str, str]] = []

    def handler(http_request: httpx.Request) -> httpx.Response:
        assert http_request.url.path == "/api/spend/uncosted"
        params = dict(http_request.url.params)
        seen.append(params)
        page = {None: (events[:3], "c1"), "c1": (events[3:], None)}[params.get("cursor")]
        body = {
            "start": "2025-10-01T00:00:00Z",
            "end": "2025-10-02T00:00:00Z",
            "requests": [event.model_dump(mode="json") for event in page[0]],
            "next_cursor": page[1],
        }
        return httpx.Response(200, json=body)

    transport = httpx.MockTransport(handler)
    async with AsyncReadClient("http://ingest", transport=transport) as client:
        pages = [
            page async for page in fetch_uncosted(client, grace_s=120, lookback_s=3600, page_size=3)
        ]

    assert [len(page) for page in pages] == [3, 2]
    assert [RequestEvent.model_validate_json(p) for page in pages for p in page] == events
    assert seen == [
        {"older_than_s": "120", "within_s": "3600", "limit": "3"},
        {"older_than_s": "120", "within_s": "3600", "limit": "3", "cursor": "c1"},
    ]


async def test_fetch_uncosted_raises_on_an_error_answer() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(401, json={"error": {}}))
    async with AsyncReadClient("http://ingest", transport=transport) as client:
        with pytest.raises(ApiError):
            async for _ in fetch_uncosted(client, grace_s=120, lookback_s=3600):
                pass
