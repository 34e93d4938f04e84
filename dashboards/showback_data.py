"""Showback page data: read API answers shaped into tables, series and CSV (no Streamlit)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd

from dashboards.formatting import count, decimal_sum, money, percent, signed_money

__all__ = [
    "FILTERS",
    "GROUPINGS",
    "SpendSummary",
    "filter_options",
    "group_label",
    "movers_table",
    "showback_csv",
    "spend_series",
    "summary",
    "totals_table",
    "unpriced_models",
]

GROUPINGS = ["org", "team", "project", "key", "user", "model", "provider"]
FILTERS = ["org", "team", "project", "key", "model", "provider"]
LABELS = {"key": "Key", "org": "Org", "user": "User"}


@dataclass(frozen=True)
class SpendSummary:
    """The figures above the chart; money as exact decimals."""

    cost: Decimal
    previous_cost: Decimal | None
    requests: int
    input_tokens: int
    output_tokens: int
    unpriced_requests: int
    rejected_requests: int = 0  # refused by the gateway before a provider: never spend
    saved: Decimal = Decimal(0)  # by response-cache hits (their answers' price, not charged)
    cache_hits: int = 0

    @property
    def change_pct(self) -> float | None:
        if not self.previous_cost:
            return None
        return float((self.cost - self.previous_cost) / self.previous_cost * 100)


def group_label(value: Any) -> str:
    """Empty attribution is spend nobody claimed yet: named so it is not overlooked."""
    return "(unattributed)" if value is None or value == "" else str(value)


def _title(name: str) -> str:
    return LABELS.get(name, name.capitalize())


def filter_options(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Values each filter can take, from showback rows grouped by every filter dimension."""
    seen: dict[str, set[str]] = {name: set() for name in FILTERS}
    for row in rows:
        for name in FILTERS:
            if row.get(name) not in (None, ""):
                seen[name].add(str(row[name]))
    return {name: sorted(values) for name, values in seen.items()}


def unpriced_models(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Models with requests no price list could cost: their spend is unknown, not zero."""
    return sorted({group_label(r.get("model")) for r in rows if r.get("unpriced_requests")})


def summary(showback: Mapping[str, Any]) -> SpendSummary:
    """Totals summed here from the rows' exact decimal strings (equal to the API's own)."""
    rows = showback["rows"]
    previous = showback.get("previous")
    return SpendSummary(
        cost=decimal_sum(row["cost_usd"] for row in rows),
        previous_cost=Decimal(previous["totals"]["cost_usd"]) if previous else None,
        requests=sum(int(row["requests"]) for row in rows),
        input_tokens=sum(int(row["input_tokens"]) for row in rows),
        output_tokens=sum(int(row["output_tokens"]) for row in rows),
        unpriced_requests=sum(int(row["unpriced_requests"]) for row in rows),
        rejected_requests=sum(int(row.get("rejected_requests") or 0) for row in rows),
        saved=decimal_sum(row.get("saved_usd") or "0" for row in rows),
        cache_hits=sum(int(row.get("cache_hits") or 0) for row in rows),
    )


def _by_cost(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(rows, key=lambda row: Decimal(row["cost_usd"]), reverse=True)


def totals_table(showback: Mapping[str, Any], grouping: str) -> pd.DataFrame:
    """One row per group, largest spend first; money as text rounded from exact values."""
    rows = _by_cost(showback["rows"])
    compared = showback.get("previous") is not None
    records = []
    for row in rows:
        record: dict[str, Any] = {_title(grouping): group_label(row.get(grouping))}
        record["Spend"] = money(row["cost_usd"])
        if compared:
            record["Previous period"] = money(row.get("previous_cost_usd") or "0")
            record["Change"] = signed_money(row.get("change_usd") or "0")
            record["Change %"] = percent(row.get("change_pct"))
        record["Saved by cache"] = money(row.get("saved_usd") or "0")
        record["Requests"] = count(row["requests"])
        record["Input tokens"] = count(row["input_tokens"])
        record["Output tokens"] = count(row["output_tokens"])
        record["Unpriced requests"] = count(row["unpriced_requests"])
        record["Rejected requests"] = count(row.get("rejected_requests") or 0)
        records.append(record)
    return pd.DataFrame.from_records(records)


def movers_table(showback: Mapping[str, Any], grouping: str) -> pd.DataFrame:
    """The groups whose spend changed most against the previous period (API order)."""
    previous = showback.get("previous") or {}
    movers = previous.get("movers") or []
    return pd.DataFrame.from_records(
        [
            {
                _title(grouping): group_label(m.get(grouping)),
                "Change": signed_money(m.get("change_usd") or "0"),
                "Change %": percent(m.get("change_pct")),
                "Now": money(m["cost_usd"]),
                "Before": money(m.get("previous_cost_usd") or "0"),
            }
            for m in movers
        ]
    )


def spend_series(timeseries: Mapping[str, Any], measure: str = "cost_usd") -> pd.DataFrame:
    """Long-format points (time, group, value) for a stacked chart; `measure` is cost_usd,
    requests or tokens (input + output). The float is for drawing only: every figure a
    reader copies comes from the exact tables."""
    points = timeseries.get("points") or []
    frame = pd.DataFrame.from_records(
        [
            {
                "time": pd.Timestamp(p["t"]),
                "group": group_label(p.get("group")) if timeseries.get("by") else "all",
                "value": _measure(p, measure),
            }
            for p in points
        ],
        columns=["time", "group", "value"],
    )
    return frame


def _measure(point: Mapping[str, Any], measure: str) -> float:
    if measure == "cost_usd":
        return float(Decimal(point["cost_usd"]))
    if measure == "tokens":
        return float(point["input_tokens"] + point["output_tokens"])
    return float(point[measure])


def showback_csv(showback: Mapping[str, Any], grouping: str) -> str:
    """The table as CSV with every decimal the read API gave (for spreadsheets)."""
    out = io.StringIO()
    compared = showback.get("previous") is not None
    columns = [grouping, "cost_usd"]
    if compared:
        columns += ["previous_cost_usd", "change_usd", "change_pct"]
    columns += ["saved_usd", "cache_hits"]
    columns += ["requests", "input_tokens", "output_tokens", "unpriced_requests"]
    columns += ["rejected_requests"]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in _by_cost(showback["rows"]):
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue()
