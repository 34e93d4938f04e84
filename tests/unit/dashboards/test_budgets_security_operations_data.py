from __future__ import annotations

from dashboards.budgets_data import budget_table, history_frame, status_label
from dashboards.operations_data import (
    guardrail_table,
    latency_chart,
    model_table,
    pipeline_figures,
)
from dashboards.security_data import anomaly_table, blocked_table, detections_timeline


def _state(status: str, spent: str, percent: float, projected: str | None = None) -> dict:
    return {
        "ts": "2025-01-02T00:00:00Z",
        "period_start": "2025-01-01T00:00:00Z",
        "period_end": "2025-02-01T00:00:00Z",
        "spent_usd": spent,
        "limit_usd": "100",
        "percent_used": percent,
        "burn_rate_usd_per_hour": "0.125",
        "projected_exhaustion": projected,
        "status": status,
    }


def _budget(bid: str, state: dict | None, action: str | None = "block") -> dict:
    return {
        "budget_id": bid,
        "subject": f"org:{bid}",
        "period": "month",
        "limit_usd": "100",
        "soft_pct": 80.0,
        "action_on_hard": action,
        "state": state,
    }


def test_budget_status_names_what_the_gateway_does() -> None:
    assert status_label(_budget("a", _state("hard", "101", 101), "throttle")) == "throttled"
    assert status_label(_budget("a", _state("hard", "101", 101), None)) == "blocked"
    assert status_label(_budget("a", _state("soft", "81", 81))) == "soft"
    assert status_label(_budget("a", None)) == "no spend yet"


def test_budget_table_most_urgent_first_with_exact_cents() -> None:
    body = {
        "budgets": [
            _budget("ok", _state("ok", "10.005", 10.005)),
            _budget("new", None),
            _budget("hot", _state("soft", "90.994", 90.994, "2025-01-03T10:00:00Z")),
            _budget("over", _state("hard", "100.5", 100.5), "alert"),
        ]
    }
    table = budget_table(body)
    assert list(table["budget_id"]) == ["over", "hot", "ok", "new"]
    assert list(table["Status"]) == ["over limit", "soft", "ok", "no spend yet"]
    assert list(table["Spent"]) == ["$100.50", "$90.99", "$10.01", "$0.00"]
    assert list(table["Burn"]) == [100.0, 90.994, 10.005, 0.0]  # the bar stops at 100
    assert list(table["Runs out"]) == ["exhausted", "2025-01-03 10:00 UTC", "not this period", "—"]
    assert budget_table({"budgets": []}).empty
    # a small budget reads in the digits it needs, not $0.00 of $0.00
    small = _budget("small", _state("soft", "0.00168", 84.0) | {"burn_rate_usd_per_hour": "0.0004"})
    row = budget_table({"budgets": [small | {"limit_usd": "0.002"}]}).iloc[0]
    assert (row["Spent"], row["Limit"], row["Burn rate / hour"]) == ("$0.0017", "$0.002", "$0.0004")


def test_history_frame() -> None:
    frame = history_frame({"history": [_state("ok", "1.5", 1.5)]})
    assert list(frame["Spent (USD)"]) == [1.5] and list(frame["Limit (USD)"]) == [100.0]


ANOMALIES = [
    {
        "anomaly_id": "1",
        "ts": "2025-01-02T10:05:00Z",
        "kind": "llmjacking",
        "subject": "key:a",
        "score": 0.9,
        "severity": "high",
        "signals": ["volume"],
        "evidence": {},
        "recommended_action": "block",
    },
    {
        "anomaly_id": "2",
        "ts": "2025-01-02T10:05:30Z",
        "kind": "agent_loop",
        "subject": "session:s",
        "score": 0.5,
        "severity": "critical",
        "signals": [],
        "evidence": {},
        "recommended_action": "alert",
    },
    {
        "anomaly_id": "3",
        "ts": "2025-01-02T08:00:00Z",
        "kind": "llmjacking",
        "subject": "key:b",
        "score": 0.4,
        "severity": "low",
        "signals": [],
        "evidence": {},
        "recommended_action": "none",
    },
]


def test_anomalies_newest_and_most_severe_first_with_block_state() -> None:
    table = anomaly_table(ANOMALIES, {"key:a"})
    assert list(table["anomaly_id"]) == ["2", "1", "3"]
    assert list(table["Blocked now"]) == ["no", "yes", "no"]
    assert list(table["Signals"]) == ["—", "volume", "—"]


def test_detections_per_hour_and_kind() -> None:
    timeline = detections_timeline(ANOMALIES)
    counts = {(str(r.time), r.kind): r.detections for r in timeline.itertuples()}
    assert counts == {
        ("2025-01-02 10:00:00+00:00", "llmjacking"): 1,
        ("2025-01-02 10:00:00+00:00", "agent_loop"): 1,
        ("2025-01-02 08:00:00+00:00", "llmjacking"): 1,
    }
    assert detections_timeline([]).empty


def test_blocked_table_shows_reason_source_and_expiry() -> None:
    decisions = [
        {
            "subject": "key:a",
            "action": "block",
            "reason": "stolen",
            "source": "manual",
            "rpm": None,
            "expires_at": None,
            "decided_at": "2025-01-02T10:00:00Z",
        },
        {
            "subject": "session:s",
            "action": "throttle",
            "reason": "loop",
            "source": "agent_loop",
            "rpm": 6,
            "expires_at": "2025-01-02T12:00:00Z",
            "decided_at": "2025-01-02T11:00:00Z",
        },
        {
            "subject": "key:c",
            "action": "allow",
            "reason": "",
            "source": "manual",
            "rpm": None,
            "expires_at": None,
            "decided_at": "2025-01-02T11:00:00Z",
        },
    ]
    table = blocked_table(decisions)
    assert list(table["Subject"]) == ["session:s", "key:a"]
    assert list(table["Action"]) == ["throttle 6 rpm", "block"]
    assert list(table["Expires"]) == ["2025-01-02 12:00 UTC", "when lifted"]


MODEL = {
    "model": "m",
    "provider": "p",
    "requests": 10,
    "errors": 1,
    "error_rate": 0.1,
    "latency_p50_ms": 100.04,
    "latency_p95_ms": 200.0,
    "latency_p99_ms": None,
    "ttft_p50_ms": None,
    "input_tokens": 5,
    "output_tokens": 7,
    "output_tokens_per_s": 12.345,
}


def test_operations_tables() -> None:
    row = model_table([MODEL]).iloc[0]
    assert row["Error rate %"] == 10.0 and row["p50 ms"] == "100.0"
    assert row["Output tokens/s"] == "12.3"
    assert (row["p99 ms"], row["TTFT p50 ms"]) == ("—", "—")  # not the word None
    chart = latency_chart([MODEL])
    assert list(chart["percentile"]) == ["p50", "p95"]  # no p99 yet: no bar
    assert set(chart["model"]) == {"m · p"}
    # requests refused before routing have neither model nor provider: no bare "@" row
    refused = model_table([MODEL | {"model": "", "provider": ""}]).iloc[0]
    assert (refused["Model"], refused["Provider"]) == ("(no model)", "—")
    assert set(latency_chart([MODEL | {"model": None, "provider": None}])["model"]) == {
        "(no model)"
    }
    guardrails = guardrail_table(
        [
            {"guardrail": "pii", "category": "email", "action": "redact", "count": 2},
            {"guardrail": "pii", "category": "email", "action": "monitor", "count": 3},
            {"guardrail": "secrets", "category": "key", "action": "block", "count": 1},
        ]
    )
    assert list(guardrails["Triggers"]) == [5, 1]
    assert guardrails["Actions"].iloc[0] == "redact 2, monitor 3"
    figures = pipeline_figures(
        {
            "status": "ok",
            "sink": {"pending_rows": 12, "uncommitted_messages": 3, "last_flush_age_s": 0.25},
        },
        [{"original_topic": "t", "stage": "ingest", "count": 2}],
    )
    assert figures["Sink backlog (rows)"] == "12" and figures["Dead letters"] == "2"
    assert figures["Last flush"] == "0.2 s ago"
