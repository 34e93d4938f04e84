"""Operations: latency percentiles, error rates and throughput by model and provider, with
guardrail triggers and dead letters over the same range.

Statistics read `requests` without FINAL: the sink drops already-stored event_ids before
inserting, so a duplicate exists only briefly after a crash, and a percentile is not
money; FINAL would cost a merge of every part on each dashboard refresh.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ingest.api.sql import Where
from meterline.warehouse import SharedClient
from schemas.api.read import (
    DeadLetterCount,
    ErrorCount,
    GuardrailCount,
    ModelOperations,
    OperationsResponse,
)

__all__ = ["FILTERS", "MAX_GROUPS", "operations"]

# API filter -> (requests column, guardrail_events column or None)
FILTERS: dict[str, tuple[str, str | None]] = {
    "org": ("org", "org"),
    "team": ("team", "team"),
    "project": ("project", "project"),
    "key": ("key_id", "key_id"),
    "model": ("model_used", None),
    "provider": ("provider", None),
}
MAX_GROUPS = 200  # model x provider rows, error kinds, guardrail categories

_MODEL_STATS = """
SELECT
    grouping(model_used, provider) AS total,
    model_used,
    provider,
    count(),
    countIf(status_code >= 400),
    quantilesExactInclusive(0.5, 0.95, 0.99)(latency_ms),
    quantileExactInclusive(0.5)(ttft_ms),
    sum(input_tokens),
    sum(output_tokens),
    sumIf(output_tokens, status_code < 400),
    sumIf(latency_ms, status_code < 400)
FROM {table}{where}
GROUP BY GROUPING SETS ((model_used, provider), ())
ORDER BY total DESC, count() DESC, model_used, provider
LIMIT {limit}
"""


def operations(
    client: SharedClient,
    *,
    start: datetime | None,
    end: datetime | None,
    filters: dict[str, str],
) -> OperationsResponse:
    db = client.database
    requests = Where().time_range("ts", start, end)
    guardrails = Where().time_range("ts", start, end)
    for name, value in filters.items():
        request_column, guardrail_column = FILTERS[name]
        requests.eq(request_column, value)
        if guardrail_column is not None:
            guardrails.eq(guardrail_column, value)
        else:
            guardrails.add("0")  # guardrail events carry no model or provider
    rows = client.query_rows(
        _MODEL_STATS.format(table=f"{db}.requests", where=requests.sql, limit=MAX_GROUPS + 1),
        requests.params,
    )
    totals = _empty()
    models = []
    for row in rows:
        stats = _model_stats(row)
        if row[0]:
            totals = stats.model_copy(update={"model": None, "provider": None})
        else:
            models.append(stats)
    errors = client.query_rows(
        f"SELECT error_type, status_code, count() AS n FROM {db}.requests"
        f"{requests.add('status_code >= 400').sql} "
        "GROUP BY error_type, status_code ORDER BY n DESC, error_type, status_code "
        f"LIMIT {MAX_GROUPS}",
        requests.params,
    )
    triggers = client.query_rows(
        f"SELECT guardrail, category, action, count() AS n FROM {db}.guardrail_events FINAL"
        f"{guardrails.sql} GROUP BY guardrail, category, action "
        f"ORDER BY n DESC, guardrail, category, action LIMIT {MAX_GROUPS}",
        guardrails.params,
    )
    dead = Where().time_range("ts", start, end)
    letters = client.query_rows(
        f"SELECT original_topic, stage, count() AS n FROM {db}.dead_letters FINAL{dead.sql} "
        f"GROUP BY original_topic, stage ORDER BY n DESC, original_topic, stage "
        f"LIMIT {MAX_GROUPS}",
        dead.params,
    )
    return OperationsResponse(
        from_=start,
        to=end,
        totals=totals,
        models=models,
        errors=[ErrorCount(error_type=r[0], status_code=r[1], count=r[2]) for r in errors],
        guardrails=[
            GuardrailCount(guardrail=r[0], category=r[1], action=r[2], count=r[3]) for r in triggers
        ],
        dead_letters=[
            DeadLetterCount(original_topic=r[0], stage=r[1], count=r[2]) for r in letters
        ],
    )


def _model_stats(row: Any) -> ModelOperations:
    _, model, provider, count, errors, latency, ttft, tokens_in, tokens_out, ok_out, ok_ms = row
    count = int(count)
    return ModelOperations(
        model=model,
        provider=provider,
        requests=count,
        errors=int(errors),
        error_rate=int(errors) / count if count else 0.0,
        latency_p50_ms=_number(latency[0]) if count else None,
        latency_p95_ms=_number(latency[1]) if count else None,
        latency_p99_ms=_number(latency[2]) if count else None,
        ttft_p50_ms=_number(ttft),
        input_tokens=int(tokens_in),
        output_tokens=int(tokens_out),
        output_tokens_per_s=int(ok_out) * 1000 / ok_ms if ok_ms else None,
    )


def _number(value: Any) -> float | None:
    # An aggregate over no value is NaN (or NULL for a Nullable column).
    if value is None or value != value:
        return None
    return float(value)


def _empty() -> ModelOperations:
    return ModelOperations(
        model=None,
        provider=None,
        requests=0,
        errors=0,
        error_rate=0.0,
        latency_p50_ms=None,
        latency_p95_ms=None,
        latency_p99_ms=None,
        ttft_p50_ms=None,
        input_tokens=0,
        output_tokens=0,
        output_tokens_per_s=None,
    )
