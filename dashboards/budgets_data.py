"""Budgets page data: every budget's burn, pace and status as table rows (no Streamlit)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pandas as pd

from dashboards.formatting import money, when

__all__ = ["STATUS_ORDER", "budget_table", "history_frame", "status_label"]

# hard is named after what the gateway does at the limit
_HARD = {"block": "blocked", "throttle": "throttled", "alert": "over limit"}
STATUS_ORDER = ["blocked", "throttled", "over limit", "soft", "ok", "no spend yet"]


def status_label(budget: Mapping[str, Any]) -> str:
    state = budget.get("state")
    if state is None:
        return "no spend yet"
    if state["status"] == "hard":
        return _HARD.get(budget.get("action_on_hard") or "block", "blocked")
    return str(state["status"])


def _exhaustion(state: Mapping[str, Any]) -> str:
    if state["status"] == "hard":
        return "exhausted"
    projected = state.get("projected_exhaustion")
    if projected is None:
        return "not this period"  # at the current pace the period ends first
    return when(projected)


def budget_table(body: Mapping[str, Any]) -> pd.DataFrame:
    """One row per budget, the most urgent first; `Burn` is a 0-100 number for a bar."""
    records = []
    for budget in body.get("budgets") or []:
        state = budget.get("state")
        status = status_label(budget)
        records.append(
            {
                "Budget": budget["subject"],
                "Period": budget["period"],
                "Status": status,
                "Spent": money(state["spent_usd"] if state else "0"),
                "Limit": money(budget["limit_usd"]),
                "Burn": min(float(state["percent_used"]), 100.0) if state else 0.0,
                "Used": f"{float(state['percent_used']):.1f}%" if state else "0.0%",
                "Burn rate / hour": money(state["burn_rate_usd_per_hour"]) if state else "—",
                "Runs out": _exhaustion(state) if state else "—",
                "Period ends": when(state["period_end"]) if state else "—",
                "budget_id": budget["budget_id"],
                "_rank": STATUS_ORDER.index(status),
                "_used": float(state["percent_used"]) if state else 0.0,
            }
        )
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame
    frame = frame.sort_values(["_rank", "_used"], ascending=[True, False], kind="stable")
    return frame.drop(columns=["_rank", "_used"]).reset_index(drop=True)


def history_frame(body: Mapping[str, Any]) -> pd.DataFrame:
    """Spent and limit over time for one budget (floats: a chart only)."""
    return pd.DataFrame.from_records(
        [
            {
                "time": pd.Timestamp(point["ts"]),
                "Spent (USD)": float(Decimal(point["spent_usd"])),
                "Limit (USD)": float(Decimal(point["limit_usd"])),
            }
            for point in body.get("history") or []
        ],
        columns=["time", "Spent (USD)", "Limit (USD)"],
    )
