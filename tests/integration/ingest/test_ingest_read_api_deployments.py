"""`/api/operations` per routing deployment (issue 12), over real HTTP, on requests that
went Kafka -> sink -> ClickHouse: every try counted against the deployment tried, retries
within a group, fallbacks across groups, and exact latency percentiles of the tries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn

from ingest.api import create_app
from meterline.clients import ReadClient
from schemas.events.v1 import RequestEvent, RouteAttempt
from tests.conftest import free_port

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
AT = NOW - timedelta(hours=1)
OPENAI, AZURE, CLAUDE = "openai/gpt-4o", "azure/gpt-4o", "anthropic/claude-sonnet"
PROVIDER = {OPENAI: "openai", AZURE: "azure", CLAUDE: "anthropic"}
GROUP = {OPENAI: "gpt-4o", AZURE: "gpt-4o", CLAUDE: "claude-sonnet"}


def _try(deployment: str, status: int, latency_ms: float, error: str = "") -> RouteAttempt:
    return RouteAttempt(
        group=GROUP[deployment],
        deployment=deployment,
        provider=PROVIDER[deployment],
        model=GROUP[deployment],
        status=status,
        latency_ms=latency_ms,
        error=error,
    )


def _request(
    request_id: str,
    deployment: str | None,
    status: int,
    latency_ms: float,
    attempts: list[RouteAttempt] | None = None,
    *,
    at: datetime = AT,
    org: str = "acme",
) -> RequestEvent:
    return RequestEvent(
        request_id=request_id,
        ts=at,
        ts_start=at,
        ts_end=at,
        latency_ms=latency_ms,
        endpoint="/v1/chat/completions",
        status_code=status,
        error_type=None if status < 400 else "upstream_error",
        org=org,
        model_requested="gpt-4o",
        model_used=None if deployment is None else GROUP[deployment],
        provider=None if deployment is None else PROVIDER[deployment],
        deployment=deployment,
        attempts=attempts or [],
    )


REQUESTS = [
    _request("first-try", OPENAI, 200, 100.0),
    _request("first-try-failed", OPENAI, 500, 50.0),
    # retried within gpt-4o: openai 429, azure 500, openai again served
    _request(
        "retried",
        OPENAI,
        200,
        70.0,
        [
            _try(OPENAI, 429, 10.0, "rate_limited"),
            _try(AZURE, 500, 20.0, "upstream_error"),
            _try(OPENAI, 200, 30.0),
        ],
    ),
    # gpt-4o timed out, then 503 on azure (a retry), then fell back to claude-sonnet
    _request(
        "fell-back",
        CLAUDE,
        200,
        1300.0,
        [
            _try(OPENAI, 0, 1000.0, "timeout"),
            _try(AZURE, 503, 40.0, "upstream_error"),
            _try(CLAUDE, 200, 200.0),
        ],
    ),
    # fell back, and the fallback failed too
    _request(
        "fell-back-failed",
        CLAUDE,
        529,
        150.0,
        [_try(OPENAI, 500, 60.0, "upstream_error"), _try(CLAUDE, 529, 80.0, "overloaded")],
    ),
    _request("other-org", CLAUDE, 200, 300.0, org="other"),
    _request("rejected-before-routing", None, 401, 1.0),
    _request("long-ago", OPENAI, 500, 9.0, at=NOW - timedelta(days=30)),
]


def _quantile(values: list[float], level: float) -> float:
    """Linear interpolation between closest ranks (quantileExactInclusive)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * level
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _expected(deployment: str, latencies: list[float], **counts: object) -> dict:
    return {
        "deployment": deployment,
        "provider": PROVIDER[deployment],
        "groups": [GROUP[deployment]],
        **counts,
        "error_rate": pytest.approx(counts["errors"] / counts["tries"]),  # type: ignore[operator]
        "latency_p50_ms": pytest.approx(_quantile(latencies, 0.5)),
        "latency_p95_ms": pytest.approx(_quantile(latencies, 0.95)),
    }


EXPECTED = [  # most tries first
    _expected(
        OPENAI,
        [100.0, 50.0, 10.0, 30.0, 1000.0, 60.0],
        requests=3,  # first-try, first-try-failed, retried
        tries=6,
        errors=4,  # first-try-failed, the 429, the timeout, the 500 before falling back
        retries=1,  # its second try in `retried`
        fallbacks_from=1,  # fell-back-failed left gpt-4o after it
        fallbacks_to=0,
    ),
    _expected(
        CLAUDE,
        [200.0, 80.0, 300.0],
        requests=3,
        tries=3,
        errors=1,
        retries=0,
        fallbacks_from=0,
        fallbacks_to=2,  # fell-back, fell-back-failed
    ),
    _expected(
        AZURE,
        [20.0, 40.0],
        requests=0,
        tries=2,
        errors=2,
        retries=2,  # second in its group both times
        fallbacks_from=1,  # fell-back left gpt-4o after it
        fallbacks_to=0,
    ),
]


@pytest.fixture
def api(harness) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(harness.client), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    harness.produce("requests", REQUESTS)
    with harness.running_sink():
        harness.wait_until(
            lambda: harness.scalar("SELECT count() FROM {db}.requests") == len(REQUESTS)
        )
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_every_try_is_counted_against_the_deployment_tried(api: str) -> None:
    since = (NOW - timedelta(days=1)).isoformat()
    with httpx.Client(base_url=api, timeout=10) as http:
        response = http.get("/api/operations", params={"from": since})
        assert response.status_code == 200, response.text
        body = response.json()
        # the existing answer is unchanged: every request of the range, routed or not
        assert set(body) == {
            "from",
            "to",
            "totals",
            "models",
            "errors",
            "guardrails",
            "dead_letters",
            "deployments",
            "cache",  # issue 16: the response cache's hit ratios (no lookups here)
        }
        assert body["cache"]["lookups"] == 0 and body["cache"]["hit_ratio"] is None
        assert body["totals"]["requests"] == 7
        assert body["deployments"] == EXPECTED

        # the filters select requests: only other-org's single try
        narrowed = http.get("/api/operations", params={"from": since, "org": "other"}).json()
        [row] = narrowed["deployments"]
        assert (row["deployment"], row["tries"], row["requests"]) == (CLAUDE, 1, 1)
        assert row["groups"] == [] and row["latency_p95_ms"] == 300.0

        # all of time: long-ago's failed try counts too
        everything = http.get("/api/operations").json()["deployments"]
        assert [(d["deployment"], d["tries"], d["errors"]) for d in everything] == [
            (OPENAI, 7, 5),
            (CLAUDE, 3, 1),
            (AZURE, 2, 2),
        ]

    # the typed client parses the same answer
    with ReadClient(api) as read:
        answer = read.operations(NOW.date() - timedelta(days=1), NOW.date())
    assert [(d.deployment, d.fallbacks_from, d.fallbacks_to) for d in answer.deployments] == [
        (OPENAI, 1, 0),
        (CLAUDE, 0, 2),
        (AZURE, 1, 0),
    ]


def test_each_request_says_what_served_it_and_what_was_tried(api: str) -> None:
    with httpx.Client(base_url=api, timeout=10) as http:
        rows = http.get("/api/requests", params={"limit": 100}).json()["requests"]
    by_id = {row["request_id"]: row for row in rows}
    fell_back = by_id["fell-back"]
    assert (fell_back["deployment"], fell_back["status_code"]) == (CLAUDE, 200)
    assert fell_back["attempt_deployments"] == [OPENAI, AZURE, CLAUDE]
    assert fell_back["attempt_statuses"] == [0, 503, 200]
    first = by_id["first-try"]
    assert (first["deployment"], first["attempt_deployments"]) == (OPENAI, [])
    assert by_id["rejected-before-routing"]["deployment"] == ""
