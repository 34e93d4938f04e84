"""Admin and Audit page data: form input to admin API arguments, tables, changes spelled out."""

from __future__ import annotations

import pytest

from dashboards.admin_data import (
    POLICY_KINDS,
    FormError,
    budget_table,
    key_table,
    limit_usd,
    parse_models,
)
from dashboards.audit_data import audit_table, changes
from schemas.policies import AGENT_LOOP_MODES, GUARDRAIL_MODES, LLMJACKING_MODES


def test_models_and_limits_typed_by_a_person() -> None:
    assert parse_models("") is None and parse_models(" , ") is None  # every model
    assert parse_models("gpt-4o, o4-*\ngpt-4o-mini") == ["gpt-4o", "o4-*", "gpt-4o-mini"]
    assert limit_usd(" $1,250.50 ") == "1250.50"
    assert limit_usd("0.000001") == "0.000001"  # exact, never through a float
    for bad, why in [("twelve", "not an amount"), ("0", r"more than \$0"), ("-3", "more than")]:
        with pytest.raises(FormError, match=why):
            limit_usd(bad)


def test_policy_kinds_are_the_guardrails_and_detectors() -> None:
    assert POLICY_KINDS["guardrail:pii"] == GUARDRAIL_MODES
    assert POLICY_KINDS["llmjacking"] == LLMJACKING_MODES
    assert POLICY_KINDS["agent_loop"] == AGENT_LOOP_MODES
    assert "cache" not in POLICY_KINDS


def test_key_and_budget_tables() -> None:
    keys = [
        {"key_id": "k2", "org": "acme", "models": None, "rpm": None, "tpm": 5000},
        {
            "key_id": "k1",
            "org": "acme",
            "team": "search",
            "models": ["gpt-4o"],
            "rpm": 60,
            "tpm": None,
            "revoked": True,
            "revoked_at": "2025-01-02T10:00:00Z",
        },
    ]
    table = key_table(keys)
    assert list(table["Key"]) == ["k2", "k1"]  # active first
    assert list(table["Status"]) == ["active", "revoked 2025-01-02 10:00 UTC"]
    assert list(table["Models"]) == ["every model", "gpt-4o"]
    assert list(table["RPM"]) == ["no limit", "60"] and table["TPM"].iloc[0] == "5,000"
    budgets = [
        {
            "budget_id": "b",
            "subject": "team:acme/search",
            "period": "month",
            "limit_usd": "0.5",
            "soft_pct": 80.0,
            "action_on_hard": "throttle",
            "throttle_rpm": 6,
            "state": {"spent_usd": "0.0021", "status": "ok"},
        }
    ]
    row = budget_table(budgets).iloc[0]
    shown = (row["Limit"], row["Soft at"], row["At the limit"])
    assert shown == ("$0.50", "80%", "throttle 6 rpm")
    assert row["Status"] == "ok" and row["Spent"] == "$0.0021"  # not $0.00


def test_changes_name_what_changed_from_what_to_what() -> None:
    before = {"limit_usd": "5", "period": "day", "created_by": "admin:a", "event_id": "1"}
    after = {"limit_usd": "7.5", "period": "day", "created_by": "admin:b", "event_id": "2"}
    assert changes(before, after) == "limit_usd: 5 → 7.5"
    assert (
        changes(None, {"org": "acme", "team": "", "models": ["a", "b"]})
        == "org: acme; models: a, b"
    )
    assert changes({"models": None}, {"models": ["gpt-4o"]}) == "models: none → gpt-4o"
    assert changes({"revoked": False}, {"revoked": True}) == "revoked: False → True"


def test_audit_table_says_who_even_when_unknown() -> None:
    entry = {
        "ts": "2025-01-02T10:00:00Z",
        "kind": "enforcement",
        "action": "lift",
        "subject": "key:k1",
        "who": None,
        "source": "*",
        "reason": None,
        "before": {"action": "block"},
        "after": None,
    }
    row = audit_table([entry]).iloc[0]
    assert (row["Who"], row["What"], row["Change"]) == (
        "unknown",
        "enforcement lift",
        "action: block",
    )
