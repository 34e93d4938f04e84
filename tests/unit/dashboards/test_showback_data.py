from __future__ import annotations

import csv
import io
from decimal import Decimal

from dashboards.showback_data import (
    filter_options,
    movers_table,
    showback_csv,
    spend_series,
    summary,
    totals_table,
    unpriced_models,
)


def _row(team: str, cost: str, **extra: object) -> dict[str, object]:
    row = {
        "team": team,
        "cost_usd": cost,
        "input_tokens": 10,
        "output_tokens": 2,
        "requests": 3,
        "unpriced_requests": 0,
    }
    row.update(extra)
    return row


SHOWBACK = {
    "rows": [
        _row("a", "1.005", previous_cost_usd="2", change_usd="-0.995", change_pct=-49.75),
        _row(
            "b",
            "10.333333333333333333",
            previous_cost_usd="0",
            change_usd="10.333333333333333333",
            change_pct=None,
        ),
        _row("", "0.1", unpriced_requests=1, previous_cost_usd="0.1", change_usd="0"),
    ],
    "previous": {
        "totals": {"cost_usd": "2.1"},
        "movers": [
            _row(
                "b",
                "10.333333333333333333",
                previous_cost_usd="0",
                change_usd="10.333333333333333333",
                change_pct=None,
            ),
            _row("a", "1.005", previous_cost_usd="2", change_usd="-0.995", change_pct=-49.75),
        ],
    },
}


def test_summary_sums_exactly_and_compares() -> None:
    figures = summary(SHOWBACK)
    assert figures.cost == Decimal("11.438333333333333333")
    assert figures.previous_cost == Decimal("2.1")
    assert figures.requests == 9 and figures.unpriced_requests == 1
    assert round(figures.change_pct or 0, 2) == 444.68


def test_totals_table_largest_first_in_cents_with_changes() -> None:
    table = totals_table(SHOWBACK, "team")
    assert list(table["Team"]) == ["b", "a", "(unattributed)"]
    assert list(table["Spend"]) == ["$10.33", "$1.01", "$0.10"]
    assert list(table["Change"]) == ["+$10.33", "-$1.00", "$0.00"]
    assert list(table["Change %"]) == ["new", "-49.8%", "new"]
    assert list(table["Unpriced requests"]) == ["0", "0", "1"]


def test_movers_keep_the_api_order() -> None:
    movers = movers_table(SHOWBACK, "team")
    assert list(movers["Team"]) == ["b", "a"]
    assert list(movers["Before"]) == ["$0.00", "$2.00"]
    assert movers_table({"rows": []}, "team").empty


def test_csv_keeps_every_decimal() -> None:
    rows = list(csv.DictReader(io.StringIO(showback_csv(SHOWBACK, "team"))))
    assert rows[0]["team"] == "b" and rows[0]["cost_usd"] == "10.333333333333333333"
    assert sum(Decimal(r["cost_usd"]) for r in rows) == Decimal("11.438333333333333333")


def test_filter_options_and_unpriced_models() -> None:
    rows = [
        {"org": "acme", "model": "m1", "unpriced_requests": 0},
        {"org": "acme", "model": "local", "unpriced_requests": 4},
        {"org": "", "model": "m1", "unpriced_requests": 0},
    ]
    options = filter_options(rows)
    assert options["org"] == ["acme"] and options["model"] == ["local", "m1"]
    assert options["team"] == []
    assert unpriced_models(rows) == ["local"]


def test_series_in_each_measure() -> None:
    body = {
        "by": "team",
        "points": [
            {
                "t": "2025-01-01T00:00:00Z",
                "group": "a",
                "cost_usd": "1.5",
                "input_tokens": 10,
                "output_tokens": 5,
                "requests": 2,
            },
            {
                "t": "2025-01-01T00:00:00Z",
                "group": None,
                "cost_usd": "0.5",
                "input_tokens": 1,
                "output_tokens": 1,
                "requests": 1,
            },
        ],
    }
    assert list(spend_series(body)["value"]) == [1.5, 0.5]
    assert list(spend_series(body)["group"]) == ["a", "(unattributed)"]
    assert list(spend_series(body, "tokens")["value"]) == [15.0, 2.0]
    assert list(spend_series(body, "requests")["value"]) == [2.0, 1.0]
    assert spend_series({"points": []}).empty
