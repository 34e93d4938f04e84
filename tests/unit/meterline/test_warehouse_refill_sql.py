"""The rebuild command's SQL is spend_daily_mv's SELECT, read from its migration."""

from __future__ import annotations

from meterline.warehouse import load_migrations, spend_daily_refill_sql


def test_the_refill_is_the_views_select_over_costs_final() -> None:
    sql = spend_daily_refill_sql("meterline")
    migration = next(m for m in load_migrations() if m.name == "0004_spend_daily")
    view = next(s for s in migration.statements("meterline") if "spend_daily_mv" in s)
    select = view[view.index("SELECT") :]
    assert sql.startswith("INSERT INTO meterline.spend_daily\nSELECT")
    assert sql.removeprefix("INSERT INTO meterline.spend_daily\n") == select.replace(
        "FROM meterline.costs", "FROM meterline.costs FINAL"
    )
