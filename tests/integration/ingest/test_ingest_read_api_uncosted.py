"""`GET /api/spend/uncosted` on the real engine: exactly the requests stored more than the
grace period ago that have no cost, as RequestEvents the pricing can price again, paged by
cursor without repeats; finance or admin only once tokens are configured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ingest.api import create_app
from ingest.api.auth import ReadTokens
from ingest.sink.clickhouse import ClickHouseSink
from processors.cost.logic import Pricer, cost_for_payload
from schemas.clickhouse.tables import row_for
from schemas.events.v1 import CostEvent, Event, RequestEvent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PATH = "/api/spend/uncosted"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _now_is_now() -> None:
    # Ages are relative to the endpoint's clock: take NOW when the test runs, not when the
    # module was collected (minutes earlier in a full run).
    globals()["NOW"] = datetime.now(UTC).replace(microsecond=0)


# Every field the endpoint promises back (the ones pricing and attribution read).
FIELDS = {
    "event_id",
    "ts",
    "source",
    "request_id",
    "ts_start",
    "ts_end",
    "latency_ms",
    "key_id",
    "org",
    "team",
    "project",
    "user",
    "session_id",
    "provider",
    "model_requested",
    "model_used",
    "endpoint",
    "stream",
    "status_code",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
}


def _request(n: int, age: timedelta, **overrides: object) -> RequestEvent:
    at = NOW - age + timedelta(milliseconds=n)  # millisecond precision, as stored
    values: dict[str, object] = {
        "request_id": f"req-{n}",
        "source": "gateway",
        "ts": at,
        "ts_start": at - timedelta(seconds=2, milliseconds=250),
        "ts_end": at - timedelta(milliseconds=5),
        "latency_ms": 2245.5,
        "key_id": f"key-{n % 3}",
        "org": "acme",
        "team": f"team-{n % 2}",
        "project": "bot",
        "user": "ann",
        "session_id": f"sess-{n}",
        "provider": "openai",
        "model_requested": "gpt-4o-mini",
        "model_used": "gpt-4o-mini-2024-07-18",
        "endpoint": "/v1/chat/completions",
        "stream": n % 2 == 0,
        "status_code": 200,
        "input_tokens": 1000 + n,
        "output_tokens": 100 + n,
        "cache_read_tokens": n,
        "cache_write_tokens": 0,
        "reasoning_tokens": n % 5,
    }
    values.update(overrides)
    return RequestEvent(**values)  # type: ignore[arg-type]


def _cost_of(request: RequestEvent) -> CostEvent:
    # As the cost agent makes it: the request's event id and ts_start.
    return Pricer().price(request)


def _seed(harness) -> tuple[list[RequestEvent], list[RequestEvent]]:
    """(the old uncosted requests in (ts, event_id) order, all requests stored)."""
    uncosted = [_request(n, timedelta(minutes=30 - n)) for n in range(5)]
    # Two at the same millisecond: the cursor must order and split them by event_id.
    uncosted.append(_request(5, timedelta(minutes=26), ts=uncosted[-1].ts))
    uncosted += [
        # No optional fields: stored as '', they come back as None.
        _request(
            6,
            timedelta(minutes=20),
            key_id=None,
            session_id=None,
            provider=None,
            model_requested=None,
            model_used="llama3",
        ),
        _request(
            7,
            timedelta(minutes=15),
            status_code=429,
            error_type="rate_limited",
            input_tokens=0,
            output_tokens=0,
            cache_read_tokens=0,
            provider="anthropic",
            model_used="claude-3-5-haiku-latest",
        ),
    ]
    costed = [_request(10 + n, timedelta(minutes=28 - n)) for n in range(4)]
    too_recent = [_request(20 + n, timedelta(seconds=10 + n)) for n in range(3)]
    too_old = [_request(30, timedelta(days=3))]  # outside the default one-day lookback
    stored = uncosted + costed + too_recent + too_old
    events: list[Event] = [*stored, *(_cost_of(r) for r in costed)]
    sink = ClickHouseSink(harness.client)
    sink.setup()
    for event in events:
        sink.add(*row_for(event))
    sink.flush()
    assert harness.scalar("SELECT count() FROM {db}.requests") == len(stored)
    assert harness.scalar("SELECT count() FROM {db}.costs") == len(costed)
    return sorted(uncosted, key=lambda r: (r.ts, r.event_id)), stored


def test_only_old_requests_without_a_cost_come_back_as_request_events(harness) -> None:
    expected, stored = _seed(harness)
    api = TestClient(create_app(harness.client))

    response = api.get(PATH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    got = [RequestEvent.model_validate(event) for event in body["requests"]]
    assert [r.request_id for r in got] == [r.request_id for r in expected]

    for returned, original in zip(got, expected, strict=True):
        assert returned.model_dump(include=FIELDS) == original.model_dump(include=FIELDS)
        for ts in (returned.ts, returned.ts_start, returned.ts_end):
            assert ts.utcoffset() == timedelta(0)
        # Priced again, it is the very cost the agent would have made (same event id).
        assert cost_for_payload(returned.to_json(), Pricer()) == _cost_of(original)
    for raw in body["requests"]:
        assert all(raw[name].endswith("Z") for name in ("ts", "ts_start", "ts_end")), raw
    end = datetime.fromisoformat(body["end"])
    assert timedelta(seconds=115) < datetime.now(UTC) - end < timedelta(seconds=180)

    # A longer grace period leaves out what is younger than it; a shorter one lets the
    # recent ones in (the costed ones never).
    older = api.get(PATH, params={"older_than_s": 22 * 60}).json()["requests"]
    cutoff = NOW - timedelta(minutes=22)
    assert [r["request_id"] for r in older] == [r.request_id for r in expected if r.ts < cutoff]
    assert len(older) == 6
    everything = api.get(PATH, params={"older_than_s": 0, "within_s": 5 * 86_400}).json()
    assert {r["request_id"] for r in everything["requests"]} == {r.request_id for r in stored} - {
        f"req-{10 + n}" for n in range(4)
    }


def test_pages_cover_every_request_once(harness) -> None:
    expected, _ = _seed(harness)
    api = TestClient(create_app(harness.client))
    ids: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        body = api.get(PATH, params=params).json()
        pages += 1
        assert len(body["requests"]) <= 2
        ids += [r["event_id"] for r in body["requests"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "the cursor does not advance"
    assert ids == [r.event_id for r in expected]  # all of them, in order, none twice
    assert pages == 5  # 8 requests by 2: four full pages, then an empty one ends it


def test_a_bad_cursor_is_a_400_naming_it(harness) -> None:
    api = TestClient(create_app(harness.client), raise_server_exceptions=False)
    bad = ["garbage", "123", "123:", "abc:evt", "-5:evt", "253402300800000:e", "9" * 40 + ":e"]
    for cursor in bad:
        response = api.get(PATH, params={"cursor": cursor})
        assert response.status_code == 400, (cursor, response.text)
        error = response.json()["error"]
        assert error["param"] == "cursor" and error["type"] == "invalid_request_error", error


def test_finance_or_admin_only_when_tokens_are_configured(harness) -> None:
    tokens = ReadTokens(
        {
            "finance": SecretStr("fin-token"),
            "security": SecretStr("sec-token"),
            "admin": SecretStr("adm-token"),
        }
    )
    api = TestClient(create_app(harness.client, tokens=tokens))

    def status(token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return api.get(PATH, headers=headers).status_code

    assert status(None) == 401
    assert status("wrong") == 401
    assert status("sec-token") == 403
    assert status("fin-token") == 200
    assert status("adm-token") == 200
