"""Showback's "saved by cache" and operations' hit ratios end to end: requests priced by
the cost processor's own Pricer -> Kafka -> sink -> ClickHouse (costs, spend_daily
through its view) -> read API over HTTP, exact to the last digit against genai-prices."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import genai_prices
import httpx
import pytest
import uvicorn
from genai_prices import Usage

from ingest.api import create_app
from ingest.api.focus import CACHE_METER
from ingest.server import IngestService
from processors.cost.logic import Pricer
from schemas.events.v1 import RequestEvent
from tests.conftest import free_port

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-haiku-latest")]


@pytest.fixture
def read_api(harness) -> Iterator[str]:
    """The ingest service (sink + read API) on a free port; its base URL."""
    service = IngestService(harness.settings)
    service.start()
    port = free_port()
    config = uvicorn.Config(
        create_app(service.client, service.status), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    service.close()


def _requests() -> list[RequestEvent]:
    """Per org and model: one miss that filled the cache, then exact and semantic hits."""
    events = []
    for i in range(24):
        provider, model = MODELS[i % 2]
        org = f"org-{i % 3}"
        status = "miss" if i < 6 else ("hit" if i % 4 else "semantic_hit")
        at = TODAY - timedelta(days=i % 2, minutes=i)
        events.append(
            RequestEvent(
                request_id=f"req-{i}",
                ts_start=at,
                ts_end=at,
                latency_ms=1.0,
                key_id=f"key-{i % 3}",
                org=org,
                provider=provider,
                model_used=model,
                endpoint="/v1/chat/completions",
                status_code=200,
                input_tokens=1000 + 37 * i,
                output_tokens=200 + 11 * i,
                cache_read_tokens=100 if i % 5 == 0 else 0,
                cache=status,
                cache_similarity=0.97 if status == "semantic_hit" else None,
                cache_source_event_id=None if status == "miss" else "ev-filler",
            )
        )
    return events


def _genai(event: RequestEvent) -> Decimal:
    usage = Usage(
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        cache_read_tokens=event.cache_read_tokens,
    )
    assert event.model_used is not None
    return genai_prices.calc_price(
        usage,
        model_ref=event.model_used,
        provider_id=event.provider,
        genai_request_timestamp=event.ts_start,
    ).total_price


def test_showback_reports_saved_dollars_beside_spend(harness, read_api) -> None:
    base = read_api
    requests = _requests()
    pricer = Pricer()
    costs = [pricer.price(event) for event in requests]
    harness.produce("costs", costs)
    harness.produce("requests", requests)
    harness.wait_until(lambda: harness.scalar("SELECT count() FROM {db}.costs") == len(costs))
    harness.wait_until(lambda: harness.scalar("SELECT count() FROM {db}.requests") == 24)

    saved: dict[str, Decimal] = defaultdict(Decimal)
    spent: dict[str, Decimal] = defaultdict(Decimal)
    for event in requests:
        (saved if event.cache != "miss" else spent)[event.org] += _genai(event)
    assert all(saved.values()) and all(spent.values())
    hits = sum(event.cache != "miss" for event in requests)

    with httpx.Client(base_url=base, timeout=10) as http:
        daily = http.get("/api/showback", params={"group_by": "org"}).json()
        since = (TODAY - timedelta(days=1, hours=1)).isoformat()  # inside a day: costs FINAL
        exact = http.get("/api/showback", params={"group_by": "org", "from": since}).json()
        operations = http.get("/api/operations").json()
        days = {
            "from": (TODAY - timedelta(days=1)).date().isoformat(),
            "to": TODAY.date().isoformat(),
        }
        focus = list(csv.DictReader(io.StringIO(http.get("/api/export/focus", params=days).text)))
        one_org = http.get("/api/operations", params={"org": "org-1"}).json()
    assert (daily["source"], exact["source"]) == ("spend_daily", "costs")
    for body in (daily, exact):
        rows = {row["org"]: row for row in body["rows"]}
        assert {org: Decimal(r["saved_usd"]) for org, r in rows.items()} == saved
        assert {org: Decimal(r["cost_usd"]) for org, r in rows.items()} == spent
        assert Decimal(body["totals"]["saved_usd"]) == sum(saved.values())
        assert body["totals"]["cache_hits"] == hits
        # Hits bill no tokens: only the misses' tokens are in showback's token totals.
        assert body["totals"]["input_tokens"] == sum(
            e.input_tokens for e in requests if e.cache == "miss"
        )
    semantic = sum(event.cache == "semantic_hit" for event in requests)
    assert operations["cache"] == {
        "lookups": 24,
        "hits": hits - semantic,
        "semantic_hits": semantic,
        "hit_ratio": hits / 24,
        "semantic_hit_ratio": semantic / 24,
    }
    assert one_org["cache"]["lookups"] == 8
    # FOCUS: one usage line per group with hits, billed 0, ListCost = the exact saving.
    cache_lines = [r for r in focus if r["SkuMeter"] == CACHE_METER]
    assert sum(Decimal(r["ListCost"]) for r in cache_lines) == sum(saved.values())
    assert sum(int(r["PricingQuantity"]) for r in cache_lines) == hits
    assert all(r["BilledCost"] == "0" for r in cache_lines)
    assert sum(Decimal(r["BilledCost"]) for r in focus) == sum(spent.values())
