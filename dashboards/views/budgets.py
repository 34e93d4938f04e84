"""Budgets: every budget's burn, pace, projected exhaustion and status (finance)."""

from __future__ import annotations

import streamlit as st

from dashboards.api import read_client, read_problem, wire
from dashboards.budgets_data import budget_table, history_frame
from dashboards.charts import budget_history_chart
from dashboards.page import load_settings, refreshing
from meterline.clients import ClientError, Role

settings = load_settings()
ROLE: Role = "finance"
api = read_client(settings, ROLE)

st.title("Budgets")
st.caption("Spent against each limit in the current period, how fast, and when it runs out.")


@refreshing(settings)
def budgets_body() -> None:
    try:
        body = wire(api.budgets())
    except ClientError as exc:
        st.error(read_problem(exc, api, ROLE))
        return
    table = budget_table(body)
    if table.empty:
        st.info(
            "No budgets yet. Create one with "
            "`meterline budgets set team:acme/search --period month --limit-usd 500`."
        )
        return
    statuses = table["Status"].value_counts()
    a, b, c, d = st.columns(4)
    a.metric("Budgets", len(table))
    b.metric("Blocked or throttled", int(statuses.get("blocked", 0) + statuses.get("throttled", 0)))
    c.metric("Over the soft limit", int(statuses.get("soft", 0) + statuses.get("over limit", 0)))
    d.metric("On track", int(statuses.get("ok", 0) + statuses.get("no spend yet", 0)))

    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_order=[c for c in table.columns if c != "budget_id"],
        column_config={
            "Burn": st.column_config.ProgressColumn(
                "Burn", min_value=0, max_value=100, format="%.0f%%", help="Spent / limit"
            ),
        },
    )

    st.subheader("History")
    labels = {row.budget_id: f"{row.Budget} ({row.Period})" for row in table.itertuples()}
    chosen = st.selectbox(
        "Budget", list(labels), format_func=labels.__getitem__, key="history_budget"
    )
    try:
        history = history_frame(wire(api.budgets(chosen)))
    except ClientError as exc:
        st.error(read_problem(exc, api, ROLE))
        return
    if history.empty:
        st.info("No spend recorded against this budget in its current period yet.")
    else:
        st.altair_chart(budget_history_chart(history), width="stretch")


budgets_body()
