from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ingest.api.anomalies import parse_severities
from ingest.api.errors import InvalidParameter
from ingest.api.focus import focus_filename, parse_focus
from ingest.api.showback import build_showback_sql, parse_showback
from ingest.api.sql import Where
from ingest.api.timeseries import parse_timeseries


def _param(exc: pytest.ExceptionInfo[InvalidParameter]) -> str:
    return exc.value.param


def test_dimensions_spend_daily_lacks_read_costs() -> None:
    # `user` is a spend_daily dimension since migration 0013; `hour` is not.
    daily = parse_showback(["org", "user"], "2026-03-01", "2026-03-02", {"model": "m"})
    assert daily.uses_daily
    by_hour = parse_showback(["hour"], "2026-03-01", "2026-03-02", {})
    assert not by_hour.uses_daily
    for start, expected in (("2026-03-01", "spend_daily"), ("2026-03-01T06:00:00Z", "costs")):
        sql, params, source = build_showback_sql(
            parse_showback(["org"], start, None, {"user": "ann'--"}), "db"
        )
        assert source == expected and "ann" not in sql and params["f_user"] == "ann'--"


def test_compare_needs_a_closed_range_without_time_groups() -> None:
    query = parse_showback(["org"], "2026-03-01", "2026-03-07", {}, "previous")
    assert query.compare
    for groups, start, end in (
        (["org"], None, "2026-03-07"),
        (["day"], "2026-03-01", "2026-03-07"),
    ):
        with pytest.raises(InvalidParameter) as err:
            parse_showback(groups, start, end, {}, "previous")
        assert _param(err) == "compare"


def test_timeseries_granularity() -> None:
    auto = parse_timeseries("org", "auto", "2026-03-01", "2026-03-02", {}, 10)
    assert auto.granularity == "hour" and auto.showback.group_by == ["hour", "org"]
    assert parse_timeseries(None, "auto", "2026-03-01", "2026-03-31", {}, 10).granularity == "day"
    assert parse_timeseries(None, "auto", None, None, {}, 10).showback.group_by == ["day"]
    for by, grain, start, top, param in (
        ("hour", "auto", None, 10, "by"),
        (None, "hour", "2026-01-01", 10, "granularity"),
        (None, "week", None, 10, "granularity"),
        (None, "day", None, 51, "top"),
    ):
        with pytest.raises(InvalidParameter) as err:
            parse_timeseries(by, grain, start, "2026-03-31", {}, top)
        assert _param(err) == param


def test_focus_range_is_whole_days() -> None:
    query = parse_focus("2026-02-01", "2026-02-28", {"org": "acme"})
    assert (query.start, query.end) == (date(2026, 2, 1), date(2026, 3, 1))
    assert focus_filename(query) == "meterline-focus-2026-02-01-2026-02-28.csv"
    with pytest.raises(InvalidParameter) as err:
        parse_focus("2026-02-01T12:00:00Z", "2026-02-28", {})
    assert _param(err) == "from"


def test_severities() -> None:
    assert parse_severities(" High, critical ") == ["high", "critical"]
    assert parse_severities(None) is None
    with pytest.raises(InvalidParameter) as err:
        parse_severities("high,urgent")
    assert _param(err) == "severity" and "urgent" in err.value.message


def test_where_binds_every_value() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    where = (
        Where()
        .time_range("ts", start, None)
        .eq("subject", "x' OR 1=1")
        .eq("kind", None)
        .any_of("severity", ["high"])
    )
    assert where.sql == (
        " WHERE ts >= {p0:DateTime64(3, 'UTC')} AND subject = {p1:String}"
        " AND severity IN {p2:Array(String)}"
    )
    assert where.params == {"p0": start, "p1": "x' OR 1=1", "p2": ["high"]}
    assert Where().sql == ""
