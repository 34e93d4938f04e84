"""Operations: latency, errors, throughput, routing deployments (tries, retries, fallbacks,
circuit breakers), guardrails, drift and the pipeline's health."""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from dashboards.api import admin_problem, read_client, read_problem, wire
from dashboards.charts import latency_bars
from dashboards.formatting import count
from dashboards.operations_data import (
    NO_MODEL,
    cache_figures,
    deployment_table,
    drift_table,
    errors_table,
    guardrail_table,
    latency_chart,
    model_table,
    pipeline_figures,
)
from dashboards.page import date_range, load_settings, refreshing
from meterline.clients import AdminClient, ClientError, Role

settings = load_settings()
ROLE: Role = "security"
api = read_client(settings, ROLE)

st.title("Operations")
st.caption("How the gateway and its upstreams behave, and whether the pipeline keeps up.")
start, end = date_range()


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f} ms" if value < 10 else f"{value:,.0f} ms"


def _routing() -> tuple[list[dict[str, Any]] | None, str | None]:
    """The gateway's deployments with their breakers, or None and why not."""
    secret = settings.resolved_admin_token
    token = secret.get_secret_value() if secret is not None else ""
    if not token:
        return None, (
            "Breaker state unknown: the dashboards have no gateway admin token (set "
            "METERLINE_ADMIN_TOKEN, or run them from `meterline up`)."
        )
    with AdminClient(settings.resolved_gateway_url, token, timeout=3.0) as admin:
        try:
            return list(admin.routing()["deployments"]), None
        except ClientError as exc:
            return None, f"Breaker state unknown: {admin_problem(exc, admin)}"


def cache_section(cache: dict[str, Any] | None) -> None:
    st.subheader("Response cache")
    secret = settings.resolved_admin_token
    gateway = None
    if secret is not None and secret.get_secret_value():
        with AdminClient(
            settings.resolved_gateway_url, secret.get_secret_value(), timeout=3.0
        ) as admin:
            try:
                gateway = admin.cache()
            except ClientError as exc:
                st.caption(f"Cache memory unknown: {admin_problem(exc, admin)}")
    figures = cache_figures(cache, gateway)
    for column, (label, value) in zip(st.columns(len(figures)), figures.items(), strict=True):
        column.metric(label, value)


def deployments_section(deployments: list[dict[str, Any]]) -> None:
    st.subheader("Deployments")
    routing, why = _routing()
    table = deployment_table(deployments, routing)
    if table.empty:
        st.info("No routed requests in this range yet.")
        return
    st.dataframe(table, hide_index=True, width="stretch")
    notes = [
        "Tries count every attempt against a deployment (retries and fallbacks included); "
        "the error rate is failed tries over tries, latency is per try. Requests are those "
        "it answered (their last try)."
    ]
    if why is not None:
        notes.append(why)
    else:
        notes.append(f"Breakers as the gateway at {settings.resolved_gateway_url} sees them now.")
    st.caption(" ".join(notes))


@refreshing(settings)
def operations_body(start: date, end: date) -> None:
    try:
        ops = wire(api.operations(start, end))
        drift = wire(api.drift(start, end))["reports"]
        health = wire(api.health())
    except ClientError as exc:
        st.error(read_problem(exc, api, ROLE))
        return
    totals = ops["totals"]
    a, b, c, d, e, f = st.columns(6)
    a.metric("Requests", count(totals["requests"]))
    b.metric("Error rate", f"{float(totals['error_rate']) * 100:.2f}%")
    c.metric("Latency p50", _ms(totals["latency_p50_ms"]))
    d.metric("Latency p95", _ms(totals["latency_p95_ms"]))
    e.metric("Latency p99", _ms(totals["latency_p99_ms"]))
    tps = totals["output_tokens_per_s"]
    f.metric("Output tokens/s", "—" if tps is None else f"{tps:,.1f}")

    st.subheader("Latency by model and provider")
    if not ops["models"]:
        st.info("No requests in this range yet.")
    else:
        st.altair_chart(latency_bars(latency_chart(ops["models"])), width="stretch")
        st.dataframe(model_table(ops["models"]), hide_index=True, width="stretch")
        rejected = sum(int(m.get("rejected") or 0) for m in ops["models"])
        if rejected:
            st.caption(
                f"{rejected:,} requests were rejected by the gateway before any provider saw "
                "them (bad key, blocked, too large, rate limited; those with no model are the "
                f"{NO_MODEL} row): counted as errors, never as spend."
            )

    deployments_section(ops["deployments"])
    cache_section(ops.get("cache"))

    left, right = st.columns(2)
    left.subheader("Errors")
    errors = errors_table(ops["errors"])
    if errors.empty:
        left.success("No failed requests.")
    else:
        left.dataframe(errors, hide_index=True, width="stretch")
    right.subheader("Guardrail triggers")
    guardrails = guardrail_table(ops["guardrails"])
    if guardrails.empty:
        right.info("No guardrail triggered.")
    else:
        right.dataframe(guardrails, hide_index=True, width="stretch")

    st.subheader("Drift")
    reports = drift_table(drift)
    if reports.empty:
        st.info("No drift reports in this range (a window closes after enough traffic).")
    else:
        drifted = int((reports["Drifted"] == "yes").sum())
        st.caption(f"{drifted} of {len(reports)} reports over their threshold.")
        st.dataframe(reports, hide_index=True, width="stretch")

    st.subheader("Pipeline")
    figures = pipeline_figures(health, ops["dead_letters"])
    for column, (label, value) in zip(st.columns(len(figures)), figures.items(), strict=True):
        column.metric(label, value)
    if ops["dead_letters"]:
        st.dataframe(
            [
                {"Topic": d["original_topic"], "Stage": d["stage"], "Dead letters": d["count"]}
                for d in ops["dead_letters"]
            ],
            hide_index=True,
        )
    st.caption(
        "The sink backlog is what ingest has read from Kafka but not yet written; the read "
        "API does not report per-topic consumer lag."
    )


operations_body(start, end)
