"""The dashboards' chart axes and subject owners (pure functions, no Streamlit)."""

from __future__ import annotations

import pandas as pd

from dashboards.budgets_data import history_frame
from dashboards.charts import budget_history_chart, latency_bars, time_format
from dashboards.operations_data import latency_chart, model_table
from dashboards.owners import key_ids_to_resolve, owner_of, owner_text, subject_label
from dashboards.security_data import anomaly_table, blocked_table
from dashboards.showback_data import showback_csv, summary, totals_table


def _history(*stamps: str) -> pd.DataFrame:
    points = [{"ts": t, "spent_usd": "0.0001", "limit_usd": "0.002"} for t in stamps]
    return history_frame({"history": points})


def test_history_axis_format_follows_the_span_never_milliseconds() -> None:
    # Snapshots 250 ms apart (the processors coalesce to that) used to read `.500 .500`.
    close = _history("2025-01-02T10:00:00.250Z", "2025-01-02T10:00:00.500Z")
    assert time_format(close["time"]) == "%H:%M:%S"
    assert time_format(_history("2025-01-02T10:00:00Z", "2025-01-02T16:00:00Z")["time"]) == (
        "%d %b %H:%M"
    )
    assert time_format(_history("2025-01-02T10:00:00Z", "2025-01-09T10:00:00Z")["time"]) == "%d %b"
    spec = budget_history_chart(close).to_dict()
    assert spec["encoding"]["x"]["axis"]["format"] == "%H:%M:%S"
    assert spec["encoding"]["x"]["type"] == "temporal"
    assert spec["mark"]["interpolate"] == "step-after"  # spend jumps, it does not slope


def test_latency_labels_are_never_truncated() -> None:
    model = {
        "model": "claude-3-5-haiku-latest-with-a-very-long-deployment-name",
        "provider": "anthropic",
        "latency_p50_ms": 1.0,
        "latency_p95_ms": 2.0,
        "latency_p99_ms": 3.0,
    }
    spec = latency_bars(latency_chart([model])).to_dict()
    assert spec["encoding"]["y"]["axis"]["labelLimit"] == 0  # 0: no limit
    [values] = spec["datasets"].values()
    assert {v["model"] for v in values} == {f"{model['model']} · anthropic"}


OWNERS = {
    "k1": {"org": "acme", "team": "search", "project": "", "user": "jane@acme.example"},
    "k2": {"org": "globex", "team": "", "project": "", "user": ""},
}


def test_owner_of_each_kind_of_subject() -> None:
    assert owner_text(OWNERS["k1"]) == "acme/search, jane@acme.example"
    assert owner_of("key:k1", OWNERS) == "acme/search, jane@acme.example"
    assert owner_of("key:k2", OWNERS) == "globex"
    assert owner_of("key:k9", OWNERS) == "unknown"
    assert owner_of("session:s1", OWNERS, via_key="k1") == "key:k1, acme/search, jane@acme.example"
    assert owner_of("session:s1", OWNERS) == "—"
    assert owner_of("team:acme/search", OWNERS) == "—"  # names its owner already
    assert subject_label("key:k2", OWNERS) == "key:k2 (globex)"
    assert subject_label("org:acme", OWNERS) == "org:acme"


def test_keys_to_resolve_come_from_subjects_and_evidence() -> None:
    subjects = ["key:k2", "team:acme/x", "session:s", "key:k1", "key:k2"]
    assert key_ids_to_resolve(subjects, [{"key_id": "k3"}, {}]) == ["k1", "k2", "k3"]


def test_security_tables_name_the_owner() -> None:
    anomaly = {
        "anomaly_id": "a",
        "ts": "2025-01-02T10:00:00Z",
        "kind": "agent_loop",
        "subject": "session:s1",
        "score": 0.9,
        "severity": "high",
        "signals": [],
        "evidence": {"key_id": "k1"},
        "recommended_action": "",
    }
    assert anomaly_table([anomaly], set(), OWNERS)["Owner"].iloc[0].startswith("key:k1, acme")
    decision = {
        "subject": "key:k2",
        "action": "block",
        "reason": "r",
        "source": "manual",
        "rpm": None,
        "decided_at": "2025-01-02T10:00:00Z",
        "expires_at": None,
    }
    assert blocked_table([decision], OWNERS)["Owner"].iloc[0] == "globex"


def test_rejected_requests_are_counted_apart_from_spend() -> None:
    row = {
        "org": "acme",
        "cost_usd": "0.0021",
        "requests": 5,
        "input_tokens": 10,
        "output_tokens": 20,
        "unpriced_requests": 0,
        "rejected_requests": 3,
    }
    body = {"rows": [row, {**row, "org": "", "cost_usd": "0", "rejected_requests": 4}]}
    figures = summary(body)
    assert figures.rejected_requests == 7 and figures.unpriced_requests == 0
    assert list(totals_table(body, "org")["Rejected requests"]) == ["3", "4"]
    assert showback_csv(body, "org").splitlines()[1].endswith(",0,3")
    refused = {"model": "", "provider": "", "requests": 4, "errors": 4, "rejected": 4}
    refused |= {"error_rate": 1.0, "output_tokens_per_s": None, "ttft_p50_ms": None}
    refused |= {f"latency_{p}_ms": None for p in ("p50", "p95", "p99")}
    table = model_table([refused])
    assert (table["Model"].iloc[0], table["Rejected"].iloc[0]) == ("(no model)", 4)
