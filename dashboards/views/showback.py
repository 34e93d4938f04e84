"""Showback: who spent what, over time, against the previous period (finance)."""

from __future__ import annotations

from datetime import date

import streamlit as st

from dashboards.api import read_client, read_problem, wire
from dashboards.formatting import count, money, percent
from dashboards.page import date_range, load_settings, refreshing
from dashboards.showback_data import (
    FILTERS,
    GROUPINGS,
    filter_options,
    movers_table,
    showback_csv,
    spend_series,
    summary,
    totals_table,
    unpriced_models,
)
from meterline.clients import ClientError, Role

ALL = "All"
MEASURES = {"Spend (USD)": "cost_usd", "Requests": "requests", "Tokens": "tokens"}

settings = load_settings()
ROLE: Role = "finance"
api = read_client(settings, ROLE)

st.title("Showback")
st.caption("Spend by org, team, project, key, user, model and provider, from the read API.")
left, right = st.columns([2, 1])
start, end = date_range(container=left)
grouping = right.selectbox("Group by", GROUPINGS, index=GROUPINGS.index("team"), key="grouping")


@refreshing(settings)
def showback_body(start: date, end: date, grouping: str) -> None:
    try:
        everything = wire(api.showback(FILTERS, start, end))
    except ClientError as exc:
        st.error(read_problem(exc, api, ROLE))
        return
    options = filter_options(everything["rows"])
    columns = st.columns(len(FILTERS))
    filters = {}
    for name, column in zip(FILTERS, columns, strict=True):
        # `/showback?key=key_…` (the Admin page links a key there) starts filtered.
        linked = st.query_params.get(name)
        choices = [ALL, *options[name], *([linked] if linked not in (None, *options[name]) else [])]
        filters[name] = column.selectbox(
            name.capitalize(),
            choices,
            index=choices.index(linked) if linked else 0,
            key=f"filter_{name}",
        )
    chosen = {name: value for name, value in filters.items() if value != ALL}
    try:
        showback = wire(api.showback([grouping], start, end, chosen, compare=True))
        series = wire(api.timeseries(grouping, start, end, chosen))
    except ClientError as exc:
        st.error(read_problem(exc, api, ROLE))
        return

    figures = summary(showback)
    if not figures.requests:
        st.info(
            "No spend in this range yet. Send traffic through the gateway "
            "(`meterline up --demo` does), or widen the dates."
        )
        return
    change = None
    if figures.previous_cost is not None:
        change = f"{money(figures.cost - figures.previous_cost)} ({percent(figures.change_pct)})"
    a, saved, b, c, d, e, f = st.columns(7)
    a.metric(
        "Spend",
        money(figures.cost),
        change,
        delta_color="inverse",
        help="Against the period of the same length just before.",
    )
    saved.metric(
        "Saved by cache",
        money(figures.saved),
        help=f"What {count(figures.cache_hits)} answers served from the response cache would "
        "have cost (not in the spend).",
    )
    b.metric("Requests", count(figures.requests))
    c.metric("Input tokens", count(figures.input_tokens))
    d.metric("Output tokens", count(figures.output_tokens))
    e.metric(
        "Unpriced requests",
        count(figures.unpriced_requests),
        help="Requests to models no price list knows: their cost is unknown, not zero.",
    )
    f.metric(
        "Rejected requests",
        count(figures.rejected_requests),
        help="Refused by the gateway before any provider saw them (bad key, blocked, too "
        "large, rate limited): they cost nothing. Operations shows why.",
    )
    if figures.unpriced_requests:
        models = ", ".join(unpriced_models(everything["rows"])) or "unknown"
        st.warning(
            f"{figures.unpriced_requests:,} requests used models without a price ({models}). "
            "Their cost is unknown, not zero, and is not in the spend above: add a "
            "`price_overrides` entry in meterline.yaml to cost them."
        )

    measure = st.segmented_control("Chart", list(MEASURES), default="Spend (USD)", key="measure")
    chart = spend_series(series, MEASURES[measure or "Spend (USD)"])
    unit = "hour" if series.get("granularity") == "hour" else "day"
    st.bar_chart(
        chart,
        x="time",
        y="value",
        color="group",
        stack=True,
        x_label=f"per {unit} (UTC)",
        y_label=measure or "Spend (USD)",
        height=320,
    )

    table, movers = st.columns([3, 2])
    table.subheader(f"By {grouping}")
    table.dataframe(totals_table(showback, grouping), hide_index=True, width="stretch")
    movers.subheader("Top movers")
    movers.caption(f"Against the previous {(end - start).days + 1} days.")
    moved = movers_table(showback, grouping)
    if moved.empty:
        movers.info("No change against the previous period.")
    else:
        movers.dataframe(moved, hide_index=True, width="stretch")

    name = f"showback-{grouping}-{start.isoformat()}-{end.isoformat()}"
    one, two, _ = st.columns([1, 1, 3])
    one.download_button(
        "Download CSV",
        showback_csv(showback, grouping),
        f"{name}.csv",
        "text/csv",
        icon=":material/download:",
        on_click="ignore",
    )

    def focus() -> bytes:
        try:
            return api.focus_csv(start, end, chosen)
        except ClientError as exc:
            return f"error: {read_problem(exc, api, ROLE)}\n".encode()

    two.download_button(
        "Download FOCUS",
        focus,
        f"focus-{start}-{end}.csv",
        "text/csv",
        icon=":material/receipt_long:",
        on_click="ignore",
        help="FinOps FOCUS-style cost export for the same dates and filters.",
    )
    st.caption("Amounts are rounded from exact values; the CSV keeps every decimal.")


showback_body(start, end, grouping)
