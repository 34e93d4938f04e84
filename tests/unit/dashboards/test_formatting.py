from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from dashboards.formatting import (
    count,
    decimal_sum,
    money,
    percent,
    signed_money,
    when,
)


def test_money_rounds_half_up_from_the_exact_value() -> None:
    assert money("1234.565") == "$1,234.57"
    # below a dollar, the digits the amount needs: never a misleading $0.00
    assert money("0.004999999999999999") == "$0.005"
    assert money("0.0021") == "$0.0021" and money("0.000012345") == "$0.000012"
    assert money("0") == "$0.00"
    assert money("-2.5") == "-$2.50"
    assert money(Decimal("0.00012345"), 4) == "$0.0001"
    assert money(None) == "—"


def test_sums_of_decimal_strings_are_exact() -> None:
    values = ["0.1"] * 10 + ["0.000000000000000001"]
    assert decimal_sum(values) == Decimal("1.000000000000000001")
    assert sum(float(v) for v in values) != 1.0  # what a float sum would have shown


def test_signs_percentages_counts_and_times() -> None:
    assert signed_money("1.2") == "+$1.20"
    assert signed_money("-1.2") == "-$1.20"
    assert signed_money("0") == "$0.00"
    assert signed_money("0.0021") == "+$0.0021"
    assert percent(12.345) == "+12.3%" and percent(None) == "new"
    assert count(1234567) == "1,234,567"
    assert when("2025-05-03T14:07:59Z") == "2025-05-03 14:07 UTC"
    assert when(datetime(2025, 1, 2, 3, 4, tzinfo=UTC)) == "2025-01-02 03:04 UTC"
