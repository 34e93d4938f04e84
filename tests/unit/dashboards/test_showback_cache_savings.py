"""Showback's "saved by cache" beside spend: the summary, the table and the CSV."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from dashboards.showback_data import showback_csv, summary, totals_table


def _row(org: str, cost: str, saved: str, hits: int) -> dict[str, object]:
    return {
        "org": org,
        "cost_usd": cost,
        "saved_usd": saved,
        "cache_hits": hits,
        "input_tokens": 10,
        "output_tokens": 2,
        "requests": 3 + hits,
        "unpriced_requests": 0,
    }


SHOWBACK = {
    "rows": [
        _row("acme", "2.5", "0.000123456789012345", 4),
        _row("globex", "7", "1.1", 1),
        _row("initech", "1", "0", 0),
    ]
}


def test_summary_sums_savings_exactly() -> None:
    figures = summary(SHOWBACK)
    assert figures.saved == Decimal("1.100123456789012345")
    assert figures.cache_hits == 5


def test_table_shows_saved_by_cache_beside_spend() -> None:
    table = totals_table(SHOWBACK, "org")
    assert list(table.columns[:3]) == ["Org", "Spend", "Saved by cache"]
    assert list(table["Org"]) == ["globex", "acme", "initech"]
    # the digits each amount needs, as spend: a real saving never reads $0.00
    assert list(table["Saved by cache"]) == ["$1.10", "$0.00012", "$0.00"]


def test_csv_keeps_every_saved_decimal() -> None:
    rows = list(csv.DictReader(io.StringIO(showback_csv(SHOWBACK, "org"))))
    assert [r["saved_usd"] for r in rows] == ["1.1", "0.000123456789012345", "0"]
    assert [r["cache_hits"] for r in rows] == ["1", "4", "0"]
    older = {"rows": [{k: v for k, v in SHOWBACK["rows"][0].items() if k != "saved_usd"}]}
    (row,) = csv.DictReader(io.StringIO(showback_csv(older, "org")))
    assert row["saved_usd"] == ""
