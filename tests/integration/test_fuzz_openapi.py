"""Fuzz the OpenAPI of ingest's read API and of the gateway's admin API (schemathesis,
in-process over ASGI, real ClickHouse engine and real broker behind them): no generated
request, valid or not, may get a response >= 500. Bounded by the number of cases (at least
600 here by default, ~20 s on two busy vCPUs, mostly spent generating them; with the 1,000
hand-made malformed bodies over five hot routes of tests/integration/gateway/test_gateway_fuzz.py
that is over 1,600 per run; `FUZZ_CASES=20000 pytest tests/integration/test_fuzz_openapi.py`
runs a larger campaign), no shrinking, no example database; derandomized, so a failure
reproduces. Hand-made malformed bodies for the hot routes and OTLP live with their own
tests."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from gateway.app import create_app as create_gateway_app
from ingest.api import create_app as create_read_api
from ingest.sink.clickhouse import ClickHouseSink
from meterline.settings import Settings
from meterline.warehouse import SharedClient, connect, migrate
from schemas.clickhouse.tables import row_for
from schemas.events.v1 import Anomaly, CostEvent, RequestEvent, SpanEvent

pytestmark = pytest.mark.integration

CASES = int(os.environ.get("FUZZ_CASES", "800"))  # shared 5:3 by the read and admin APIs
ADMIN = {"Authorization": "Bearer test-admin-token"}
NOW = datetime.now(UTC).replace(microsecond=0)


def _seed(client: SharedClient) -> None:
    """A little of everything, so queries have rows to group, join and render."""
    sink = ClickHouseSink(client)
    for i in range(20):
        ts = NOW - timedelta(hours=i)
        events = [
            RequestEvent(
                request_id=f"r{i}",
                ts_start=ts,
                ts_end=ts,
                latency_ms=12.5,
                key_id=f"key-{i % 3}",
                org="acme",
                team="search",
                endpoint="/v1/chat/completions",
                status_code=200 if i % 4 else 500,
                model_used="gpt-4o",
                trace_id="ab" * 16,
            ),
            CostEvent(
                request_id=f"r{i}",
                request_ts=ts,
                key_id=f"key-{i % 3}",
                org="acme",
                team="search",
                model="gpt-4o",
                provider="openai",
                total_cost=Decimal("0.0123"),
                price_source="genai-prices@test",
                priced=True,
            ),
            SpanEvent(
                trace_id="ab" * 16,
                span_id=f"{i:016x}",
                name="chat",
                kind="LLM",
                start_ts=ts,
                end_ts=ts,
                duration_ms=1.0,
            ),
            Anomaly(
                kind="llmjacking",
                subject=f"key:key-{i % 3}",
                score=0.9,
                severity="high",
                recommended_action="block",
            ),
        ]
        for event in events:
            sink.add(*row_for(event))
    sink.flush()


def _schema(app: Any) -> Any:
    """`app`'s OpenAPI (built in-process: the gateway does not serve it), called over ASGI."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    return schema


def _fuzz(app: Any, total: int, headers: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """(cases sent, the >= 500 answers) over every operation of `app`'s OpenAPI: `total`
    cases asked for, shared by the operations, 3/4 valid and 1/4 invalid input (invalid
    cases cost more to generate)."""
    schema = _schema(app)
    per_operation = math.ceil(total / sum(1 for _ in schema.get_all_operations()))
    sent = 0
    errors: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, share in ((GenerationMode.POSITIVE, 0.75), (GenerationMode.NEGATIVE, 0.25)):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=max(1, round(per_operation * share)),
                deadline=None,
                database=None,
                derandomize=True,  # the same cases every run: a failure reproduces
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                nonlocal sent
                response = case.call(headers=headers)
                sent += 1
                if response.status_code >= 500 and len(errors) < 20:
                    errors.append(
                        f"{response.status_code} {case.method} {case.formatted_path} "
                        f"query={case.query!r} body={case.body!r}: {response.text[:300]}"
                    )

            with contextlib.suppress(Unsatisfiable):  # nothing to make invalid (no parameters)
                run()
    return sent, errors


@pytest.fixture(scope="module")
def read_api(chdb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    settings_ = Settings(
        data_dir=tmp_path_factory.mktemp("fuzz"),
        clickhouse_url=chdb_url,
        clickhouse_database="fuzz_" + str(time.time_ns()),
    )
    client = SharedClient(connect(settings_), settings_.clickhouse_database)
    migrate(client.client, settings_.clickhouse_database)
    _seed(client)
    yield create_read_api(client)


def test_no_generated_request_gets_a_5xx(
    read_api: Any, broker: Any, make_settings: Callable[..., Settings]
) -> None:
    read_sent, read_errors = _fuzz(read_api, CASES * 5 // 8)
    admin = create_gateway_app(make_settings(broker))
    admin_sent, admin_errors = _fuzz(admin, CASES * 3 // 8, headers=ADMIN)

    assert not read_errors, "read API:\n" + "\n".join(read_errors)
    assert not admin_errors, "admin API:\n" + "\n".join(admin_errors)
    assert read_sent + admin_sent >= CASES * 3 // 4, (read_sent, admin_sent)
    print(f"schemathesis: {read_sent} read API + {admin_sent} admin API cases, none >= 500")
