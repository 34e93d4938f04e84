"""Operations: latency percentiles, error rates and throughput by model and provider (and the
requests the gateway refused before any provider saw them: `rejected`, the rule of
processors.cost.logic.never_reached_a_provider), with
guardrail triggers and dead letters over the same range, each routing deployment's
tries, failures, retries and fallbacks (issue 12), and the response cache's hit ratios
(issue 16).

Statistics read `requests` without FINAL: the sink drops already-stored event_ids before
inserting, so a duplicate exists only briefly after a crash, and a percentile is not
money; FINAL would cost a merge of every part on each dashboard refresh. A range of whole
days holding at least ROLLUP_FROM_REQUESTS requests, without a key filter, reads the
requests_daily rollup instead (migration 0013): the same counts and sums, percentiles from
merged t-digests (~1% off), in tens of milliseconds where exact percentiles over tens of
millions of rows take seconds (bench/read_api.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
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

__all__ = [
    "FILTERS",
    "MAX_GROUPS",
    "ROLLUP_FROM_REQUESTS",
    "cache_operations",
    "deployment_operations",
    "operations",
]

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
# Below this many requests in range, exact percentiles over `requests` answer in well under
# a second (bench/read_api.py: ~0.3 s per million on 2 shared vCPUs).
ROLLUP_FROM_REQUESTS = 1_000_000

_MODEL_STATS = """
SELECT
    grouping(model_used, provider) AS total,
    model_used,
    provider,
    {count},
    {errors},
    {latency},
    {ttft},
    sum(input_tokens),
    sum(output_tokens),
    sumIf(output_tokens, status_code < 400),
    {ok_latency},
    {refused}
FROM {table}{where}
GROUP BY GROUPING SETS ((model_used, provider), ())
ORDER BY total DESC, {count} DESC, model_used, provider
LIMIT {limit}
"""


@dataclass(frozen=True)
class _Source:
    """Where the request statistics come from: `requests` (a row per request) or the
    requests_daily rollup (a row per day x attribution x model x outcome x cache)."""

    table: str
    count: str
    counted_if: str  # the count of the rows meeting {cond}
    latency: str  # p50, p95, p99
    ttft: str  # p50
    latency_if: str  # the latency summed over the rows meeting {cond}

    def count_if(self, condition: str) -> str:
        return self.counted_if.format(cond=condition)

    def model_stats(self, database: str, where: Where, limit: int) -> str:
        return _MODEL_STATS.format(
            count=self.count,
            errors=self.count_if("status_code >= 400"),
            latency=self.latency,
            ttft=self.ttft,
            ok_latency=self.latency_if.format(cond="status_code < 400"),
            refused=self.count_if("status_code >= 400 AND provider = ''"),
            table=f"{database}.{self.table}",
            where=where.sql,
            limit=limit,
        )


_REQUESTS = _Source(
    table="requests",
    count="count()",
    counted_if="countIf({cond})",
    latency="quantilesExactInclusive(0.5, 0.95, 0.99)(latency_ms)",
    ttft="quantileExactInclusive(0.5)(ttft_ms)",
    latency_if="sumIf(latency_ms, {cond})",
)
_DAILY = _Source(
    table="requests_daily",
    count="sum(requests)",
    counted_if="sumIf(requests, {cond})",
    latency="quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)",
    ttft="quantileTDigestMerge(0.5)(ttft_digest)",
    latency_if="sumIf(latency_ms_sum, {cond})",
)

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


def _daily_filters(
    client: SharedClient,
    start: datetime | None,
    end: datetime | None,
    filters: dict[str, str],
    rollup_from: int,
) -> Where | None:
    """The requests_daily conditions of the range and filters when the rollup answers:
    whole days, no key filter (the rollup has no key), at least `rollup_from` requests."""
    bounds = [bound for bound in (start, end) if bound is not None]
    if "key" in filters or any(bound.timetz().replace(tzinfo=None) != time(0) for bound in bounds):
        return None
    where = Where().time_range("day", start and start.date(), end and end.date(), "Date")
    for name, value in filters.items():
        where.eq(FILTERS[name][0], value)
    ((stored,),) = client.query_rows(
        f"SELECT sum(requests) FROM {client.database}.requests_daily{where.sql}", where.params
    )
    return where if int(stored) >= rollup_from else None


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
    rollup_from: int = ROLLUP_FROM_REQUESTS,
) -> OperationsResponse:
    db = client.database
    requests, guardrails = _request_filters(start, end, filters)
    daily = _daily_filters(client, start, end, filters, rollup_from)
    source, requests = (_REQUESTS, requests) if daily is None else (_DAILY, daily)
    rows = client.query_rows(source.model_stats(db, requests, MAX_GROUPS + 1), requests.params)
    cache = _cache(client, source, requests)
    totals = _empty()
    models = []
    for row in rows:
        stats = _model_stats(row)
        if row[0]:
            totals = stats.model_copy(update={"model": None, "provider": None})
        else:
            models.append(stats)
    errors = client.query_rows(
        f"SELECT error_type, status_code, {source.count} AS n FROM {db}.{source.table}"
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
        cache=cache,
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
    return _cache(client, _REQUESTS, where)


def _cache(client: SharedClient, source: _Source, where: Where) -> CacheOperations:
    counts = ", ".join(
        source.count_if(condition)
        for condition in ("cache != ''", "cache = 'hit'", "cache = 'semantic_hit'")
    )
    ((lookups, hits, semantic),) = client.query_rows(
        f"SELECT {counts} FROM {client.database}.{source.table}{where.sql}", where.params
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
