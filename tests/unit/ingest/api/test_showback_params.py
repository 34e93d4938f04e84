from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.api.errors import InvalidParameter
from ingest.api.showback import (
    build_showback_sql,
    parse_bound,
    parse_group_by,
    parse_showback,
)


def test_group_by_accepts_commas_and_repeats() -> None:
    assert parse_group_by(["org,team", "model", "org", " day "]) == ["org", "team", "model", "day"]
    assert parse_group_by(None) == []


def test_group_by_rejects_unknown_values_by_name() -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_group_by(["org,user;drop table"])
    assert err.value.param == "group_by"
    assert "user;drop table" in err.value.message


def test_bounds() -> None:
    assert parse_bound("from", "2026-03-01", is_end=False) == datetime(2026, 3, 1, tzinfo=UTC)
    # A date as `to` includes the whole day.
    assert parse_bound("to", "2026-03-01", is_end=True) == datetime(2026, 3, 2, tzinfo=UTC)
    assert parse_bound("to", "2026-03-01T10:30:00Z", is_end=True) == datetime(
        2026, 3, 1, 10, 30, tzinfo=UTC
    )
    assert parse_bound("from", "2026-03-01T10:30:00", is_end=False).tzinfo is not None
    assert parse_bound("from", None, is_end=False) is None
    with pytest.raises(InvalidParameter) as err:
        parse_bound("from", "yesterday", is_end=False)
    assert err.value.param == "from"


def test_reversed_range_is_rejected() -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_showback(None, "2026-03-02", "2026-03-01", {})
    assert err.value.param == "to"


def test_day_ranges_read_spend_daily_with_parameters_only() -> None:
    query = parse_showback(["org", "day"], "2026-03-01", "2026-03-31", {"org": "acme'--"})
    sql, params, source = build_showback_sql(query, "meterline")
    assert source == "spend_daily"
    assert "acme" not in sql  # values never reach the SQL text
    assert params["f_org"] == "acme'--"
    assert "{f_org:String}" in sql and "GROUP BY g_org, g_day" in sql


def test_sub_day_ranges_read_costs_final() -> None:
    query = parse_showback(["key"], "2026-03-01T12:00:00Z", None, {"key": "k1"})
    sql, params, source = build_showback_sql(query, "meterline")
    assert source == "costs"
    assert "costs FINAL" in sql and "key_id AS g_key" in sql
    assert params["start"] == datetime(2026, 3, 1, 12, tzinfo=UTC)
