"""A real read API for the dashboard tests: events through the real broker and the real
sink into this process's ClickHouse engine, served by the ingest app on uvicorn.

Seeded once for the package (seeding is the slow part; no test changes the seeded data);
the expected figures are computed here from the seeded events, exactly, so the tests can
compare the pages against them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

import dashboards
from gateway.app import create_app as create_gateway
from ingest.api import create_app
from ingest.api.auth import ReadTokens
from ingest.sink.clickhouse import ClickHouseSink
from ingest.sink.consumer import SinkConsumer
from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import create_topics, producer_config
from meterline.settings import Settings
from meterline.warehouse import SharedClient, connect, migrate
from schemas.events.v1 import (
    Anomaly,
    BudgetRecord,
    BudgetState,
    CostEvent,
    DeadLetter,
    DriftReport,
    EnforcementDecision,
    Event,
    GuardrailEvent,
    RequestEvent,
    RouteAttempt,
)
from tests.conftest import unique
from tests.integration.gateway.conftest import ServerThread

APP = str(Path(dashboards.__file__).parent / "app.py")
FINANCE_TOKEN = "dash-finance-token"
ADMIN_TOKEN = "dash-admin-token"

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.replace(hour=0, minute=0, second=0)
TEAMS = [("acme", "search"), ("acme", "support"), ("globex", "research")]
MODELS = [("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("claude-3-5-haiku", "anthropic")]


@dataclass
class Seed:
    costs: list[CostEvent] = field(default_factory=list)
    previous: list[CostEvent] = field(default_factory=list)  # the 7 days before the default
    requests: list[RequestEvent] = field(default_factory=list)
    unpriced: int = 0

    def spend_by_team(self) -> dict[str, Decimal]:
        spend: dict[str, Decimal] = {}
        for cost in self.costs:
            spend[cost.team] = spend.get(cost.team, Decimal(0)) + cost.total_cost
        return spend

    @property
    def total(self) -> Decimal:
        return sum((c.total_cost for c in self.costs), Decimal(0))


def _cost(i: int, at: datetime, priced: bool = True) -> tuple[RequestEvent, CostEvent]:
    org, team = TEAMS[i % len(TEAMS)]
    model, provider = MODELS[i % len(MODELS)]
    if not priced:
        model, provider = "acme-local-7b", "local"
    who = {"key_id": f"k{i % 4}", "org": org, "team": team, "project": "p", "user": f"u{i % 3}"}
    deployment = f"{provider}/{model}"
    # Every fifth request needed a retry in its group (a 429, then the same deployment).
    attempts = (
        [
            RouteAttempt(
                group=model, deployment=deployment, provider=provider, model=model, **outcome
            )
            for outcome in (
                {"status": 429, "latency_ms": 5.0, "error": "rate_limited"},
                {"status": 200, "latency_ms": 90.0},
            )
        ]
        if i % 5 == 4 and i % 10 != 9
        else []
    )
    request = RequestEvent(
        request_id=f"r{i}-{at:%j}",
        ts=at,
        ts_start=at,
        ts_end=at,
        latency_ms=float(100 + (i * 37) % 400),
        ttft_ms=float(20 + i % 30),
        endpoint="/v1/chat/completions",
        status_code=500 if i % 10 == 9 else 200,
        error_type="upstream_error" if i % 10 == 9 else None,
        input_tokens=1000 + i,
        output_tokens=200 + i,
        model_used=model,
        provider=provider,
        deployment=deployment,
        attempts=attempts,
        **who,
    )
    # Dollars with digits far below the cent: a float on the way would show.
    amount = Decimal("1.234567890123456789") * (i % 7 + 1) if priced else Decimal(0)
    cost = CostEvent(
        request_id=request.request_id,
        request_ts=at,
        model=model,
        provider=provider,
        input_tokens=request.input_tokens,
        output_tokens=request.output_tokens,
        total_cost=amount,
        price_source="test" if priced else "",
        priced=priced,
        **who,
    )
    return request, cost


def _seed_events(seed: Seed) -> dict[str, list[Event | None]]:
    for i in range(36):
        at = TODAY - timedelta(days=1 + i % 3, hours=-(i % 20))
        request, cost = _cost(i, at, priced=i % 12 != 11)
        seed.requests.append(request)
        seed.costs.append(cost)
        seed.unpriced += 0 if cost.priced else 1
    for i in range(9):
        _, cost = _cost(i, TODAY - timedelta(days=10, hours=-i))
        seed.previous.append(cost)
    b_team = BudgetRecord(
        budget_id="b-search", subject="team:acme/search", period="month", limit_usd=100
    )
    b_org = BudgetRecord(budget_id="b-globex", subject="org:globex", period="day", limit_usd=20)
    b_new = BudgetRecord(budget_id="b-umbrella", subject="org:umbrella", period="week", limit_usd=5)
    period_start = TODAY.replace(day=1)
    states = [
        BudgetState(
            ts=NOW - timedelta(hours=3 - n),
            budget_id="b-search",
            subject="team:acme/search",
            period="month",
            period_start=period_start,
            period_end=period_start + timedelta(days=31),
            spent_usd=spent,
            limit_usd=Decimal(100),
            percent_used=float(spent),
            burn_rate_usd_per_hour=Decimal("1.5"),
            projected_exhaustion=NOW + timedelta(days=2),
            status="soft" if spent >= 80 else "ok",
        )
        for n, spent in enumerate([Decimal("60"), Decimal("70.5"), Decimal("84.126")])
    ]
    states.append(
        BudgetState(
            ts=NOW - timedelta(minutes=5),
            budget_id="b-globex",
            subject="org:globex",
            period="day",
            period_start=TODAY,
            period_end=TODAY + timedelta(days=1),
            spent_usd=Decimal("20.004"),
            limit_usd=Decimal(20),
            percent_used=100.02,
            burn_rate_usd_per_hour=Decimal("2.25"),
            status="hard",
        )
    )
    anomalies = [
        Anomaly(
            anomaly_id="an-1",
            ts=NOW - timedelta(hours=2),
            kind="llmjacking",
            subject="key:k1",
            score=0.97,
            severity="critical",
            signals=["new_network", "model_enumeration"],
            evidence={"networks": ["203.0.113.0/24"], "models_tried": 7},
            recommended_action="block",
        ),
        Anomaly(
            anomaly_id="an-2",
            ts=NOW - timedelta(hours=1),
            kind="agent_loop",
            subject="session:s-42",
            score=0.6,
            severity="medium",
            signals=["repeat"],
            evidence={"repeats": 9},
        ),
    ]
    decisions = [
        EnforcementDecision(
            ts=NOW - timedelta(hours=2),
            subject="key:k1",
            action="block",
            reason="llmjacking: enumeration from a new network",
            source="llmjacking",
            anomaly_id="an-1",
        )
    ]
    guardrails = [
        GuardrailEvent(
            request_id=f"g{i}",
            ts=TODAY - timedelta(hours=3),
            org="acme",
            guardrail=name,
            stage="input",
            action=action,
            category=category,
        )
        for i, (name, category, action) in enumerate(
            [("pii", "email", "monitor"), ("pii", "email", "monitor"), ("secrets", "key", "redact")]
        )
    ]
    drift = [
        DriftReport(
            scope="app:bot/model:gpt-4o",
            metric="prompt_chars",
            statistic="psi",
            value=0.41,
            threshold=0.25,
            drifted=True,
            window_start=NOW - timedelta(hours=2),
            window_end=NOW - timedelta(hours=1),
        )
    ]
    dead = [DeadLetter(original_topic="x.requests", error="bad", stage="ingest", payload="{")]
    return {
        "requests": list(seed.requests),
        "costs": [*seed.costs, *seed.previous],
        "control": [b_team, b_org, b_new],
        "budgets": list(states),
        "anomalies": list(anomalies),
        "enforcement": list(decisions),
        "guardrails": list(guardrails),
        "drift": list(drift),
        "dlq": list(dead),
    }


TABLE_OF = {
    "requests": "requests",
    "costs": "costs",
    "control": "control_records",
    "budgets": "budget_states",
    "anomalies": "anomalies",
    "enforcement": "enforcement_decisions",
    "guardrails": "guardrail_events",
    "drift": "drift_reports",
    "dlq": "dead_letters",
}


def _key(topic: str, event: Event) -> bytes:
    if isinstance(event, BudgetRecord):
        return f"budget:{event.budget_id}".encode()
    if isinstance(event, EnforcementDecision):
        return f"{event.source}|{event.subject}".encode()
    return topic.encode()


def _load(settings: Settings, client: SharedClient, events: dict[str, list[Event | None]]) -> None:
    producer = Producer(producer_config(settings))
    for topic, batch in events.items():
        for event in batch:
            assert event is not None
            producer.produce(settings.topic(topic), value=event.to_json(), key=_key(topic, event))
    assert producer.flush(15) == 0
    sink = ClickHouseSink(client)
    sink.setup()
    consumer = SinkConsumer(settings, sink)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        for topic, batch in events.items():
            sql = f"SELECT count() FROM {client.database}.{TABLE_OF[topic]}"
            while client.query_rows(sql)[0][0] < len(batch):
                assert time.monotonic() < deadline, f"{topic} did not reach ClickHouse"
                time.sleep(0.1)
    finally:
        stop.set()
        thread.join(30)


@dataclass
class ReadApiUnderTest:
    url: str  # open (no role tokens)
    guarded_url: str  # the same data behind role tokens
    seed: Seed


@pytest.fixture(scope="package")  # seeded once for every dashboard test module
def read_api(broker: EmbeddedBroker, chdb_url: str) -> Iterator[ReadApiUnderTest]:
    settings = Settings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=unique("dash") + ".",
        topic_partitions=1,
        clickhouse_url=chdb_url,
        clickhouse_database=unique("dash_"),
        ingest={"sink": {"group_id": unique("dash-sink-"), "flush_interval_s": 0.2}},
    )
    create_topics(settings)
    client = SharedClient(connect(settings), settings.clickhouse_database)
    migrate(client.client, settings.clickhouse_database)
    seed = Seed()
    _load(settings, client, _seed_events(seed))
    tokens = ReadTokens({"finance": SecretStr(FINANCE_TOKEN)})
    with (
        ServerThread(create_app(client)) as open_api,
        ServerThread(create_app(client, tokens=tokens)) as guarded,
    ):
        yield ReadApiUnderTest(open_api.url, guarded.url, seed)


@dataclass
class GatewayUnderTest:
    url: str
    settings: Settings


@pytest.fixture
def admin_gateway(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[GatewayUnderTest]:
    """A real gateway (admin API on uvicorn, real broker) with its own topics."""
    settings = Settings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=unique("dashgw") + ".",
        topic_partitions=1,
        admin_token=ADMIN_TOKEN,
        data_dir=tmp_path / "gateway",
    )
    create_topics(settings)
    with ServerThread(create_gateway(settings)) as server:
        yield GatewayUnderTest(server.url, settings)


@pytest.fixture
def gateway(admin_gateway: GatewayUnderTest) -> str:
    return admin_gateway.url


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point the dashboards at given services, with nothing from this machine leaking in."""

    def apply(read_api_url: str, **extra: str) -> None:
        for name in (
            "METERLINE_ADMIN_TOKEN",
            "METERLINE_GATEWAY_URL",
            "METERLINE_READ_TOKEN_FINANCE",
            "METERLINE_READ_TOKEN_SECURITY",
            "METERLINE_READ_TOKEN_ADMIN",
        ):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("METERLINE_CONFIG", str(_empty_config(tmp_path)))
        monkeypatch.setenv("METERLINE_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("METERLINE_READ_API_URL", read_api_url)
        for name, value in extra.items():
            monkeypatch.setenv(name, value)

    return apply


def _empty_config(directory: Path) -> Path:
    """A configuration file with nothing in it: no ./meterline.yaml of the developer's
    can leak into the test (METERLINE_CONFIG must name a file that exists)."""
    path = directory / "meterline.yaml"
    path.write_text("{}\n")
    return path
