from __future__ import annotations

from decimal import Decimal

import pytest

from meterline.money import usd


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.002134"), "$0.0021"),
        (Decimal("0.000000123456789012345678"), "$0.00000012"),
        ("0.123456", "$0.12"),
        (0.0105, "$0.011"),  # the float as it prints, rounded half up
        (Decimal("0.999"), "$1.00"),
        (Decimal("1234.5650"), "$1,234.57"),
        (Decimal("12.000000000000000000"), "$12.00"),  # 18 stored decimals are not shown
        (0, "$0.00"),
        (Decimal("0.0100"), "$0.01"),
        (Decimal("0.0020"), "$0.002"),
        (Decimal("-0.0042"), "-$0.0042"),
        (Decimal("1e-20"), "$0.00"),  # below the warehouse's scale
    ],
)
def test_amounts_read_with_the_digits_they_need(value, text: str) -> None:
    assert usd(value) == text


def test_fixed_places_line_up_a_table() -> None:
    assert usd(Decimal("0.002134"), places=4) == "$0.0021"
    assert usd(Decimal("5"), places=4) == "$5.0000"
    assert usd("-1234.5", places=2) == "-$1,234.50"
