"""Operations page data: latency, errors, throughput, guardrails, drift, pipeline health,
and each routing deployment's tries with its circuit breaker."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from dashboards.formatting import count, when

__all__ = [
    "BREAKER_UNKNOWN",
    "DEPLOYMENT_COLUMNS",
    "NO_MODEL",
    "cache_figures",
    "deployment_table",
    "drift_table",
    "errors_table",
    "guardrail_table",
    "latency_chart",
    "model_label",
    "model_table",
    "pipeline_figures",
]


NO_MODEL = "(no model)"  # refused before a model was read: a bad key, a block, bad JSON


def _ms(value: float | None) -> str:
    # Text, so a missing figure reads "—" (a table shows a null as the word None).
    return "—" if value is None else f"{float(value):,.1f}"


def model_label(model: str | None, provider: str | None) -> str:
    """`gpt-4o · openai`; a request refused before routing has neither."""
    name = model or NO_MODEL
    return f"{name} · {provider}" if provider else name


def model_table(models: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Latency percentiles (ms), error rate (%) and output tokens per second per model."""
    return pd.DataFrame.from_records(
        [
            {
                "Model": m["model"] or NO_MODEL,
                "Provider": _text(m["provider"]),
                "Requests": int(m["requests"]),
                "Errors": int(m["errors"]),
                "Rejected": int(m.get("rejected") or 0),
                "Error rate %": round(float(m["error_rate"]) * 100, 2),
                "p50 ms": _ms(m["latency_p50_ms"]),
                "p95 ms": _ms(m["latency_p95_ms"]),
                "p99 ms": _ms(m["latency_p99_ms"]),
                "TTFT p50 ms": _ms(m["ttft_p50_ms"]),
                "Output tokens/s": _ms(m["output_tokens_per_s"]),
            }
            for m in models
        ],
        columns=[
            "Model",
            "Provider",
            "Requests",
            "Errors",
            "Rejected",
            "Error rate %",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "TTFT p50 ms",
            "Output tokens/s",
        ],
    )


BREAKER_UNKNOWN = "unknown"
DEPLOYMENT_COLUMNS = [
    "Deployment",
    "Provider",
    "Groups",
    "Requests",
    "Tries",
    "Error rate",
    "Retries",
    "Fell back from",
    "Served after fallback",
    "p95 latency",
    "Breaker",
]
_BREAKERS = {"closed": "closed", "open": "open", "half_open": "half-open"}


def _text(value: str | None) -> str:
    return "—" if value is None or value == "" else str(value)


def _latency(value: float | None) -> str:
    return "—" if value is None else f"{float(value):,.1f} ms"


def _breaker(state: Mapping[str, Any] | None) -> str:
    if state is None:
        return "not routed now"  # the gateway no longer has this deployment
    text = _BREAKERS.get(str(state.get("breaker")), _text(state.get("breaker")))
    failures = int(state.get("consecutive_failures") or 0)
    return f"{text} ({failures} failed in a row)" if failures and text != "open" else text


def deployment_table(
    deployments: Iterable[Mapping[str, Any]],
    routing: Iterable[Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per deployment: what the read API counted over the range, and its breaker
    from the gateway's `/admin/routing` (`routing` None: unknown). A deployment the gateway
    routes to but that had no try in the range still gets a row, its breaker included."""
    states = None if routing is None else {r["deployment"]: r for r in routing}
    records = []
    seen: set[str] = set()
    for d in deployments:
        seen.add(d["deployment"])
        records.append(
            {
                "Deployment": _text(d["deployment"]),
                "Provider": _text(d["provider"]),
                "Groups": ", ".join(d.get("groups") or []) or "—",
                "Requests": count(d["requests"]),
                "Tries": count(d["tries"]),
                "Error rate": f"{float(d['error_rate']) * 100:.2f}%",
                "Retries": count(d["retries"]),
                "Fell back from": count(d["fallbacks_from"]),
                "Served after fallback": count(d["fallbacks_to"]),
                "p95 latency": _latency(d["latency_p95_ms"]),
                "Breaker": BREAKER_UNKNOWN
                if states is None
                else _breaker(states.get(d["deployment"])),
            }
        )
    for name, state in (states or {}).items():
        if name in seen:
            continue
        records.append(
            {
                "Deployment": _text(name),
                "Provider": _text(state.get("provider")),
                "Groups": _text(state.get("group")),
                "Requests": count(0),
                "Tries": count(0),
                "Error rate": "—",
                "Retries": count(0),
                "Fell back from": count(0),
                "Served after fallback": count(0),
                "p95 latency": "—",
                "Breaker": _breaker(state),
            }
        )
    return pd.DataFrame.from_records(records, columns=DEPLOYMENT_COLUMNS)


def latency_chart(models: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Long format (model · provider, percentile, ms) for a grouped bar chart."""
    records = []
    for m in models:
        label = model_label(m["model"], m["provider"])
        for name in ("p50", "p95", "p99"):
            value = m[f"latency_{name}_ms"]
            if value is not None:
                records.append({"model": label, "percentile": name, "ms": float(value)})
    return pd.DataFrame.from_records(records, columns=["model", "percentile", "ms"])


def errors_table(errors: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(
        [
            {"Error": e["error_type"] or "(none)", "Status": e["status_code"], "Count": e["count"]}
            for e in errors
        ],
        columns=["Error", "Status", "Count"],
    )


def guardrail_table(guardrails: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Triggers per category (summed over actions), with the actions taken spelled out."""
    frame = pd.DataFrame.from_records(
        list(guardrails), columns=["guardrail", "category", "action", "count"]
    )
    if frame.empty:
        return pd.DataFrame(columns=["Guardrail", "Category", "Triggers", "Actions"])
    frame["action_text"] = frame["action"] + " " + frame["count"].astype(str)
    grouped = frame.groupby(["guardrail", "category"], as_index=False).agg(
        Triggers=("count", "sum"), Actions=("action_text", ", ".join)
    )
    grouped = grouped.rename(columns={"guardrail": "Guardrail", "category": "Category"})
    return grouped.sort_values("Triggers", ascending=False, kind="stable").reset_index(drop=True)


def drift_table(reports: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(
        [
            {
                "When": when(r["ts"]),
                "Scope": r["scope"],
                "Metric": r["metric"],
                "Test": r["statistic"],
                "Value": round(float(r["value"]), 4),
                "Threshold": float(r["threshold"]),
                "Drifted": "yes" if r["drifted"] else "no",
                "Window": f"{when(r['window_start'])} → {when(r['window_end'])}",
            }
            for r in reports
        ],
        columns=["When", "Scope", "Metric", "Test", "Value", "Threshold", "Drifted", "Window"],
    )


def pipeline_figures(
    health: Mapping[str, Any], dead_letters: Iterable[Mapping[str, Any]]
) -> dict[str, str]:
    """What the ingest sink reports (its backlog stands in for consumer lag) and the DLQ."""
    sink = health.get("sink") or {}
    age = sink.get("last_flush_age_s")
    return {
        "Pipeline": str(health.get("status", "unknown")),
        "Sink backlog (rows)": count(sink.get("pending_rows")),
        "Uncommitted messages": count(sink.get("uncommitted_messages")),
        "Last flush": "—" if age is None else f"{float(age):.1f} s ago",
        "Dead letters": count(sum(int(d["count"]) for d in dead_letters)),
    }


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def _mib(value: Any) -> str:
    return f"{int(value) / 1024 / 1024:,.1f} MiB"


def cache_figures(
    cache: Mapping[str, Any] | None, gateway: Mapping[str, Any] | None
) -> dict[str, str]:
    """The response cache: hit ratios over the range's requests (read API), and the memory
    one gateway holds now (its /admin/cache; None when it could not be asked)."""
    cache = cache or {}
    figures = {
        "Hit ratio": _ratio(cache.get("hit_ratio")),
        "Semantic hit ratio": _ratio(cache.get("semantic_hit_ratio")),
        "Lookups": count(cache.get("lookups") or 0),
    }
    if gateway is None:
        figures["Cache memory"] = "—"
    else:
        figures["Cache memory"] = f"{_mib(gateway['bytes'])} of {_mib(gateway['max_bytes'])}"
        figures["Entries"] = f"{count(gateway['entries'])} of {count(gateway['max_entries'])}"
    return figures
