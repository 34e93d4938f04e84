"""Every dashboard page under Streamlit's AppTest against a real read API over seeded data:
the figures shown must be the seeded ones, money exact to the cent."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from streamlit.testing.v1 import AppTest

from tests.integration.dashboards.conftest import APP, FINANCE_TOKEN, TODAY
from tests.integration.gateway.conftest import ServerThread

pytestmark = pytest.mark.integration


def _cents(amount: Decimal) -> str:
    """Written independently of dashboards.formatting: $1,234.57, rounded half up."""
    return "${:,}".format(amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _page(path: str | None = None, **query: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=30)
    for name, value in query.items():
        app.query_params[name] = value
    app.run()
    if path is not None:
        app.switch_page(path).run()
    assert not app.exception, app.exception
    return app


def _metric(app: AppTest, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def test_showback_totals_are_the_seeded_costs_to_the_cent(read_api, dashboard_env) -> None:
    dashboard_env(read_api.url)
    app = _page()
    seed = read_api.seed
    assert not app.error
    assert _metric(app, "Spend") == _cents(seed.total)
    assert _metric(app, "Requests") == f"{len(seed.costs):,}"
    assert _metric(app, "Input tokens") == f"{sum(c.input_tokens for c in seed.costs):,}"
    assert _metric(app, "Unpriced requests") == str(seed.unpriced)
    # unpriced usage is called out by model, not hidden
    assert "acme-local-7b" in app.warning[0].value and "not zero" in app.warning[0].value

    table, movers = app.dataframe[0].value, app.dataframe[1].value
    shown = dict(zip(table["Team"], table["Spend"], strict=True))
    assert shown == {team: _cents(spend) for team, spend in seed.spend_by_team().items()}
    previous: dict[str, Decimal] = {}
    for cost in seed.previous:
        previous[cost.team] = previous.get(cost.team, Decimal(0)) + cost.total_cost
    assert dict(zip(table["Team"], table["Previous period"], strict=True)) == {
        team: _cents(previous.get(team, Decimal(0))) for team in shown
    }
    # the largest absolute change first
    changes = {t: s - previous.get(t, Decimal(0)) for t, s in seed.spend_by_team().items()}
    assert movers["Team"].iloc[0] == max(changes, key=lambda t: abs(changes[t]))

    # another grouping and a filter narrow the same figures
    app.selectbox(key="grouping").set_value("model").run()
    app.selectbox(key="filter_org").set_value("globex").run()
    assert not app.exception
    globex = [c for c in seed.costs if c.org == "globex"]
    assert _metric(app, "Spend") == _cents(sum((c.total_cost for c in globex), Decimal(0)))
    assert set(app.dataframe[0].value["Model"]) == {c.model for c in globex}
    assert [b.label for b in app.get("download_button")] == ["Download CSV", "Download FOCUS"]


def test_budgets_show_burn_status_and_exhaustion(read_api, dashboard_env) -> None:
    dashboard_env(read_api.url)
    app = _page("views/budgets.py")
    assert not app.error
    table = app.dataframe[0].value.set_index("Budget")
    assert table.loc["org:globex", "Status"] == "blocked"  # hard limit, action block
    assert table.loc["org:globex", "Spent"] == "$20.00"
    assert table.loc["team:acme/search", "Status"] == "soft"
    assert table.loc["team:acme/search", "Spent"] == "$84.13"  # 84.126, half up
    assert table.loc["team:acme/search", "Limit"] == "$100.00"
    assert table.loc["team:acme/search", "Used"] == "84.1%"
    assert table.loc["team:acme/search", "Burn rate / hour"] == "$1.50"
    assert table.loc["team:acme/search", "Runs out"].endswith("UTC")
    assert table.loc["org:umbrella", "Status"] == "no spend yet"
    assert table.index[0] == "org:globex"  # the most urgent first
    assert _metric(app, "Blocked or throttled") == "1"

    app.selectbox(key="history_budget").set_value("b-search").run()
    assert not app.exception
    [chart] = app.get("vega_lite_chart")  # spent against the limit over time
    assert not [i for i in app.info if "No spend recorded" in i.value]
    # Hours of snapshots: the axis names day and minute (Vega's own pick read `.500`).
    x = json.loads(chart.proto.spec)["encoding"]["x"]
    assert x["type"] == "temporal" and x["axis"]["format"] == "%d %b %H:%M"


def test_security_shows_anomalies_evidence_and_blocks(read_api, dashboard_env) -> None:
    dashboard_env(read_api.url)
    app = _page("views/security.py")
    assert not app.error
    assert _metric(app, "Anomalies in range") == "2"
    assert _metric(app, "Critical or high") == "1"
    assert _metric(app, "Blocked or throttled now") == "1"
    anomalies = app.dataframe[0].value
    assert list(anomalies["Subject"]) == ["session:s-42", "key:k1"]  # newest first
    assert anomalies.set_index("Subject").loc["key:k1", "Blocked now"] == "yes"
    # a key is shown with its owner, read from its newest request (no admin token here)
    k1 = [r for r in read_api.seed.requests if r.key_id == "k1"]
    newest = max(r.ts for r in k1)
    owners = {f"{r.org}/{r.team}/{r.project}, {r.user}" for r in k1 if r.ts == newest}
    assert anomalies.set_index("Subject").loc["key:k1", "Owner"] in owners
    assert app.dataframe[1].value.iloc[0]["Owner"] in owners
    assert "new_network, model_enumeration" in set(anomalies["Signals"])
    blocked = app.dataframe[1].value.iloc[0]
    assert (blocked["Subject"], blocked["Source"]) == ("key:k1", "llmjacking")
    assert blocked["Reason"].startswith("llmjacking: enumeration")
    evidence = [j.value for j in app.json]
    assert {"networks": ["203.0.113.0/24"], "models_tried": 7} in [json.loads(v) for v in evidence]
    # without an admin token there is nothing to click
    assert "admin token" in app.info[-1].value


def test_security_alert_link_narrows_to_the_subject(read_api, dashboard_env) -> None:
    dashboard_env(read_api.url, METERLINE_ADMIN_TOKEN="any")
    app = _page("views/security.py", subject="session:s-42")
    assert "session:s-42" in app.info[0].value
    assert _metric(app, "Anomalies in range") == "1"
    assert list(app.dataframe[0].value["Subject"]) == ["session:s-42"]
    app.text_input(key="actor").input("ana@acme.example").run()  # who, before any action
    assert app.text_input(key="action_subject").value == "session:s-42"


def test_operations_shows_latency_errors_guardrails_drift_and_dlq(read_api, dashboard_env):
    dashboard_env(read_api.url)
    app = _page("views/operations.py")
    assert not app.error
    seed = read_api.seed
    # the default range of every page: the last 7 days, today included (UTC)
    shown = [r for r in seed.requests if r.ts >= TODAY - timedelta(days=6)]
    assert _metric(app, "Requests") == str(len(shown))
    errors = sum(1 for r in shown if r.status_code >= 400)
    assert _metric(app, "Error rate") == f"{errors / len(shown) * 100:.2f}%"
    models = app.dataframe[0].value
    assert set(models["Model"]) == {r.model_used for r in shown}
    assert models["Requests"].sum() == len(shown)
    p50, p95, p99 = (models[f"{p} ms"].astype(float) for p in ("p50", "p95", "p99"))
    assert (p50 <= p95).all() and (p95 <= p99).all()
    # full model labels (no ellipsis) and no literal None anywhere in the table
    [chart] = app.get("vega_lite_chart")
    assert json.loads(chart.proto.spec)["encoding"]["y"]["axis"]["labelLimit"] == 0
    assert not models.isin([None, "None"]).any().any()
    deployments = app.dataframe[1].value.set_index("Deployment")
    by_deployment: dict[str, list] = {}
    for r in shown:
        by_deployment.setdefault(r.deployment, []).append(r)
    assert set(deployments.index) == set(by_deployment)
    for name, served in by_deployment.items():
        row = deployments.loc[name]
        retried = sum(1 for r in served if r.attempts)  # one 429, then served
        tries = len(served) + retried
        failed = sum(1 for r in served if r.status_code >= 400) + retried
        assert (row["Requests"], row["Tries"]) == (f"{len(served):,}", f"{tries:,}")
        assert row["Retries"] == f"{retried:,}" and row["Fell back from"] == "0"
        assert row["Error rate"] == f"{failed / tries * 100:.2f}%"
        assert row["p95 latency"].endswith(" ms")
    assert set(deployments["Breaker"]) == {"unknown"}  # no admin token configured
    assert any("no gateway admin token" in caption.value for caption in app.caption)
    guardrails = app.dataframe[3].value.set_index("Category")
    assert guardrails.loc["email", "Triggers"] == 2
    assert guardrails.loc["key", "Actions"] == "redact 1"
    drift = app.dataframe[4].value
    assert list(drift["Drifted"]) == ["yes"] and drift["Scope"].iloc[0] == "app:bot/model:gpt-4o"
    assert _metric(app, "Dead letters") == "1"
    assert _metric(app, "Pipeline") == "ok"


def test_operations_shows_each_deployments_breaker_from_the_gateway(read_api, dashboard_env):
    """With an admin token, the breaker column is what GET /admin/routing answers; a
    deployment the gateway routes to without traffic in the range still gets its row."""
    seen: list[str | None] = []

    async def routing(request: Request) -> JSONResponse:
        seen.append(request.headers.get("authorization"))
        states = [
            ("openai/gpt-4o", "openai", "open", 5),
            ("openai/gpt-4o-mini", "openai", "closed", 0),
            ("anthropic/claude-3-5-haiku", "anthropic", "half_open", 0),
            ("azure/gpt-4o", "azure", "closed", 0),  # no traffic
        ]
        return JSONResponse(
            {
                "deployments": [
                    {
                        "deployment": name,
                        "provider": provider,
                        "group": name.split("/")[1],
                        "model": None,
                        "breaker": breaker,
                        "consecutive_failures": failures,
                        "in_flight": 0,
                        "latency_ms": None,
                    }
                    for name, provider, breaker, failures in states
                ]
            }
        )

    gateway = Starlette(routes=[Route("/admin/routing", routing)])
    with ServerThread(gateway) as server:
        dashboard_env(
            read_api.url, METERLINE_ADMIN_TOKEN="adm-secret", METERLINE_GATEWAY_URL=server.url
        )
        app = _page("views/operations.py")
    assert not app.error and seen and set(seen) == {"Bearer adm-secret"}
    breakers = app.dataframe[1].value.set_index("Deployment")["Breaker"].to_dict()
    assert breakers == {
        "openai/gpt-4o": "open",
        "openai/gpt-4o-mini": "closed",
        "anthropic/claude-3-5-haiku": "half-open",
        "azure/gpt-4o": "closed",
        "local/acme-local-7b": "not routed now",  # served in range, no longer routed
    }
    idle = app.dataframe[1].value.set_index("Deployment").loc["azure/gpt-4o"]
    assert (idle["Requests"], idle["Error rate"], idle["p95 latency"]) == ("0", "—", "—")
    assert not any("Breaker state unknown" in caption.value for caption in app.caption)


def test_role_tokens_are_sent_and_their_absence_explained(read_api, dashboard_env) -> None:
    dashboard_env(read_api.guarded_url)
    app = _page()
    assert "METERLINE_READ_TOKEN_FINANCE" in app.error[0].value

    dashboard_env(read_api.guarded_url, METERLINE_READ_TOKEN_FINANCE=FINANCE_TOKEN)
    app = _page()
    assert not app.error
    assert _metric(app, "Spend") == _cents(read_api.seed.total)


def test_every_page_opens_on_the_same_range_and_keeps_a_picked_one(read_api, dashboard_env):
    dashboard_env(read_api.url)
    app = _page()
    week = (TODAY.date() - timedelta(days=6), TODAY.date())
    assert app.date_input(key="dates").value == week
    for page in ("views/security.py", "views/operations.py"):
        app.switch_page(page).run()
        assert app.date_input(key="dates").value == week, page
    picked = (TODAY.date() - timedelta(days=2), TODAY.date() - timedelta(days=1))
    app.date_input(key="dates").set_value(picked).run()
    app.switch_page("views/showback.py").run()
    assert not app.exception
    assert app.date_input(key="dates").value == picked
    requests = [c for c in read_api.seed.costs if picked[0] <= c.request_ts.date() <= picked[1]]
    assert _metric(app, "Requests") == f"{len(requests):,}"
