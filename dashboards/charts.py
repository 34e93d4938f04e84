"""Charts whose axes the pages must control (Altair specs, no Streamlit).

Streamlit's quick charts pick their own time format and cut long category labels: a budget
whose snapshots are a second apart read `.500 .500` under its history, and a model named
`claude-3-5-haiku-latest` lost its tail. Here the time format follows the span shown and
category labels are never truncated.
"""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd

__all__ = ["budget_history_chart", "latency_bars", "time_format"]


def time_format(times: pd.Series) -> str:
    """A d3 time format that tells the shown points apart without sub-second noise."""
    if times.empty:
        return "%d %b %H:%M"
    span = times.max() - times.min()
    if span < timedelta(minutes=2):
        return "%H:%M:%S"
    if span < timedelta(days=2):
        return "%d %b %H:%M"
    return "%d %b"


def budget_history_chart(history: pd.DataFrame, height: int = 280) -> alt.Chart:
    """Spent (a step line: spend only jumps) against the limit, from `history_frame`."""
    long = history.melt("time", var_name="series", value_name="usd")
    axis = alt.Axis(format=time_format(history["time"]), labelAngle=0, tickCount=6)
    return (
        alt.Chart(long)
        .mark_line(interpolate="step-after", point=len(history) < 30)
        .encode(
            x=alt.X("time:T", title="time (UTC)", axis=axis),
            y=alt.Y("usd:Q", title="USD"),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=[alt.Tooltip("time:T", format="%Y-%m-%d %H:%M:%S"), "series:N", "usd:Q"],
        )
        .properties(height=height)
    )


def latency_bars(latency: pd.DataFrame) -> alt.Chart:
    """p50/p95/p99 side by side per model, from `latency_chart`; full labels."""
    rows = max(latency["model"].nunique(), 1)
    return (
        alt.Chart(latency)
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title=None, axis=alt.Axis(labelLimit=0)),
            yOffset=alt.YOffset("percentile:N", sort=["p50", "p95", "p99"]),
            x=alt.X("ms:Q", title="latency (ms)"),
            color=alt.Color(
                "percentile:N", sort=["p50", "p95", "p99"], legend=alt.Legend(orient="bottom")
            ),
            tooltip=["model:N", "percentile:N", alt.Tooltip("ms:Q", format=",.1f")],
        )
        .properties(height=60 * rows + 40)
    )
