"""Showback: spend by any grouping over a date range, exact to the last digit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import streamlit as st

from dashboards.read_api import ReadApiError, fetch_showback
from meterline.settings import Settings

GROUPINGS = ["org", "team", "project", "key", "model", "provider"]

settings = Settings()
st.set_page_config(page_title="Meterline · Showback", layout="wide")
st.title("Showback")

today = datetime.now(UTC).date()
left, middle, right = st.columns([2, 1, 1])
group_by = left.multiselect("Group by", GROUPINGS, default=["org", "model"])
start = middle.date_input("From", today - timedelta(days=30))
end = right.date_input("To", today)

try:
    showback = fetch_showback(settings.resolved_read_api_url, [*group_by, "day"], start, end)
except ReadApiError as exc:
    st.error(str(exc))
    st.stop()

rows = pd.DataFrame(showback["rows"])
if rows.empty:
    st.info("No spend in this range yet. Send traffic through the gateway, or widen the range.")
    st.stop()

rows["cost_usd"] = rows["cost_usd"].map(Decimal)
label = rows[group_by].astype(str).agg(" / ".join, axis=1) if group_by else "all"
rows["group"] = label
total = sum(rows["cost_usd"], Decimal(0))
unpriced = int(rows.get("unpriced_requests", pd.Series(dtype=int)).sum())

a, b, c = st.columns(3)
a.metric("Spend (USD)", f"${total:,.4f}")
b.metric("Requests", f"{int(rows['requests'].sum()):,}")
c.metric("Unpriced requests", f"{unpriced:,}", help="Models no price list knows: not free.")

daily = rows.pivot_table(index="day", columns="group", values="cost_usd", aggfunc="sum")
st.bar_chart(daily.astype(float))

table = (
    rows.groupby(group_by or ["group"], as_index=False)
    .agg(cost_usd=("cost_usd", "sum"), requests=("requests", "sum"))
    .sort_values("cost_usd", ascending=False)
)
table["cost_usd"] = table["cost_usd"].map(lambda v: f"{v:.6f}")
st.dataframe(table, use_container_width=True, hide_index=True)
st.download_button("Download CSV", table.to_csv(index=False), "showback.csv", "text/csv")
