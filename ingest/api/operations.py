"""Operations: latency percentiles, error rates and throughput by model and provider (and the
requests the gateway refused before any provider saw them: `rejected`, the rule of
processors.cost.logic.never_reached_a_provider), with
guardrail triggers and dead letters over the same range, each routing deployment's
tries, failures, retries and fallbacks (issue 12), and the response cache's hit ratios
(issue 16).

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
    CacheOperations,
    DeadLetterCount,
    DeploymentOperations,
    ErrorCount,
    GuardrailCount,
    ModelOperations,
    OperationsResponse,
)

__all__ = ["FILTERS", "MAX_GROUPS", "cache_operations", "deployment_operations", "operations"]

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
    sumIf(latency_ms, status_code < 400),
    countIf(status_code >= 400 AND provider = '')
FROM {table}{where}
GROUP BY GROUPING SETS ((model_used, provider), ())
ORDER BY total DESC, count() DESC, model_used, provider
LIMIT {limit}
"""

# One row per try: a request's attempts when it needed more than one, else its single try
# (its own deployment, provider, status and latency). `i` is the try's 1-based position,
# so the last try (i = length) answered the request; a try is a retry when its group was
# tried before in the request (indexOf finds the first), and the fallback source when the
# next try is in another group. Requests rejected before routing (no deployment, no
# attempts) have no try.
_DEPLOYMENT_STATS = """
SELECT
    try_deployment,
    try_provider,
    arraySort(groupUniqArrayIf(try_group, try_group != '')),
    countIf(i = length(deployments)),
    count(),
    countIf(try_status = 0 OR try_status >= 400 OR try_error != ''),
    countIf(indexOf(groups, try_group) < i),
    countIf(i < length(groups) AND groups[i + 1] != try_group),
    countIf(i = length(deployments) AND crossed),
    quantilesExactInclusive(0.5, 0.95)(try_latency)
FROM (
    SELECT
        empty(attempt_deployments) AS single,
        if(single, [toString(deployment)], attempt_deployments) AS deployments,
        if(single, [toString(provider)], attempt_providers) AS providers,
        if(single, [''], attempt_groups) AS groups,
        if(single, [toInt32(status_code)], attempt_statuses) AS statuses,
        if(single, [toFloat64(latency_ms)], attempt_latencies_ms) AS latencies,
        if(single, [''], attempt_errors) AS errors,
        length(arrayDistinct(groups)) > 1 AS crossed
    FROM {table}{where}
)
ARRAY JOIN
    deployments AS try_deployment,
    providers AS try_provider,
    groups AS try_group,
    statuses AS try_status,
    latencies AS try_latency,
    errors AS try_error,
    arrayEnumerate(deployments) AS i
GROUP BY try_deployment, try_provider
ORDER BY count() DESC, try_deployment, try_provider
LIMIT {limit}
"""


def _request_filters(
    start: datetime | None, end: datetime | None, filters: dict[str, str]
) -> tuple[Where, Where]:
    """The requests and guardrail_events conditions of the range and the filters."""
    requests = Where().time_range("ts", start, end)
    guardrails = Where().time_range("ts", start, end)
    for name, value in filters.items():
        request_column, guardrail_column = FILTERS[name]
        requests.eq(request_column, value)
        if guardrail_column is not None:
            guardrails.eq(guardrail_column, value)
        else:
            guardrails.add("0")  # guardrail events carry no model or provider
    return requests, guardrails


def deployment_operations(
    client: SharedClient,
    *,
    start: datetime | None,
    end: datetime | None,
    filters: dict[str, str],
) -> list[DeploymentOperations]:
    """Every try of the range's routed requests, per deployment (exact counts and
    percentiles; the filters select requests, so `provider` is the serving provider)."""
    where, _ = _request_filters(start, end, filters)
    where.add("(deployment != '' OR notEmpty(attempt_deployments))")
    rows = client.query_rows(
        _DEPLOYMENT_STATS.format(
            table=f"{client.database}.requests", where=where.sql, limit=MAX_GROUPS
        ),
        where.params,
    )
    return [_deployment_stats(row) for row in rows]


def operations(
    client: SharedClient,
    *,
    start: datetime | None,
    end: datetime | None,
    filters: dict[str, str],
) -> OperationsResponse:
    db = client.database
    requests, guardrails = _request_filters(start, end, filters)
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
        deployments=deployment_operations(client, start=start, end=end, filters=filters),
        cache=cache_operations(client, start=start, end=end, filters=filters),
    )


def cache_operations(
    client: SharedClient,
    *,
    start: datetime | None,
    end: datetime | None,
    filters: dict[str, str],
) -> CacheOperations:
    """The response cache's lookups, hits and semantic hits over the range's requests."""
    where, _ = _request_filters(start, end, filters)
    ((lookups, hits, semantic),) = client.query_rows(
        "SELECT countIf(cache != ''), countIf(cache = 'hit'), countIf(cache = 'semantic_hit') "
        f"FROM {client.database}.requests{where.sql}",
        where.params,
    )
    lookups, hits, semantic = int(lookups), int(hits), int(semantic)
    return CacheOperations(
        lookups=lookups,
        hits=hits,
        semantic_hits=semantic,
        hit_ratio=(hits + semantic) / lookups if lookups else None,
        semantic_hit_ratio=semantic / lookups if lookups else None,
    )


def _deployment_stats(row: Any) -> DeploymentOperations:
    deployment, provider, groups, answered, tries, errors, retries, left, arrived, latency = row
    tries = int(tries)
    return DeploymentOperations(
        deployment=deployment,
        provider=provider,
        groups=list(groups),
        requests=int(answered),
        tries=tries,
        errors=int(errors),
        error_rate=int(errors) / tries if tries else 0.0,
        retries=int(retries),
        fallbacks_from=int(left),
        fallbacks_to=int(arrived),
        latency_p50_ms=_number(latency[0]) if tries else None,
        latency_p95_ms=_number(latency[1]) if tries else None,
    )


def _model_stats(row: Any) -> ModelOperations:
    _, model, provider, count, errors, latency, ttft, tokens_in, tokens_out, ok_out = row[:10]
    ok_ms, refused = row[10:]
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
        rejected=int(refused),
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
