"""The rebuild command's SQL is spend_daily_mv's SELECT, read from the latest migration
that creates the view (0008 recreated it with the response cache's measures, 0009 with
the rejected requests, 0013 with the user); every other rollup's likewise."""

from __future__ import annotations

from meterline.warehouse import load_migrations, refill_sqls, spend_daily_refill_sql


def test_the_refill_is_the_views_select_over_costs_final() -> None:
    sql = spend_daily_refill_sql("meterline")
    creating = [
        m
        for m in load_migrations()
        if any("MATERIALIZED VIEW" in s and "spend_daily_mv" in s for s in m.statements("x"))
    ]
    assert [m.name for m in creating] == [
        "0004_spend_daily",
        "0008_response_cache",
        "0009_rejected_requests",
        "0013_read_rollups",
    ]
    view = next(
        s
        for s in creating[-1].statements("meterline")
        if s.startswith("CREATE MATERIALIZED VIEW") and "spend_daily_mv" in s
    )
    select = view[view.index("SELECT") :]
    assert "sum(saved_cost) AS saved_usd" in select
    assert "countIf(rejected) AS rejected_requests" in select
    assert "GROUP BY day, org, team, project, key_id, `user`, provider" in select
    assert sql.startswith("INSERT INTO meterline.spend_daily\nSELECT")
    assert sql.removeprefix("INSERT INTO meterline.spend_daily\n") == select.replace(
        "FROM meterline.costs", "FROM meterline.costs FINAL"
    )


def test_every_rollup_is_refilled_from_its_views_select() -> None:
    refills = refill_sqls("meterline")
    assert set(refills) == {"spend_daily", "requests_daily"}
    assert refills["spend_daily"] == spend_daily_refill_sql("meterline")
    (view,) = [
        s
        for m in load_migrations()
        for s in m.statements("meterline")
        if s.startswith("CREATE MATERIALIZED VIEW") and "requests_daily_mv" in s
    ]
    select = view[view.index("SELECT") :]
    assert refills["requests_daily"] == "INSERT INTO meterline.requests_daily\n" + select.replace(
        "FROM meterline.requests", "FROM meterline.requests FINAL"
    )
