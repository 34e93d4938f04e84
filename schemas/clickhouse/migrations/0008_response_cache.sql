-- The response cache (issue 16): what the cache did for each request, and what each hit
-- saved. A hit's cost row has every cost 0 and `saved_cost` priced like spend; spend_daily
-- sums it as `saved_usd` (and counts hits), so showback shows "saved by cache" beside spend.
ALTER TABLE {{database}}.requests
    ADD COLUMN IF NOT EXISTS cache LowCardinality(String) AFTER guardrail_categories,
    ADD COLUMN IF NOT EXISTS cache_similarity Nullable(Float64) AFTER cache,
    ADD COLUMN IF NOT EXISTS cache_source_event_id String AFTER cache_similarity;

ALTER TABLE {{database}}.costs
    ADD COLUMN IF NOT EXISTS cache LowCardinality(String) AFTER priced,
    ADD COLUMN IF NOT EXISTS saved_cost Decimal(38, 18) AFTER cache;

ALTER TABLE {{database}}.spend_daily
    ADD COLUMN IF NOT EXISTS saved_usd Decimal(38, 18) AFTER unpriced_requests,
    ADD COLUMN IF NOT EXISTS cache_hits UInt64 AFTER saved_usd;

-- The view gains the two measures (a view's SELECT cannot be altered in place; this runs
-- once, at start, before the sink writes). `meterline warehouse rebuild-aggregates` reads
-- this, the latest spend_daily_mv, as its refill.
DROP VIEW IF EXISTS {{database}}.spend_daily_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.spend_daily_mv TO {{database}}.spend_daily AS
SELECT
    toDate(request_ts) AS day,
    org,
    team,
    project,
    key_id,
    provider,
    model,
    priced,
    sum(total_cost) AS cost_usd,
    sum(input_cost) AS input_cost_usd,
    sum(output_cost) AS output_cost_usd,
    sum(cache_read_cost) AS cache_read_cost_usd,
    sum(cache_write_cost) AS cache_write_cost_usd,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    count() AS requests,
    countIf(NOT priced) AS unpriced_requests,
    sum(saved_cost) AS saved_usd,
    countIf(cache IN ('hit', 'semantic_hit')) AS cache_hits
FROM {{database}}.costs
GROUP BY day, org, team, project, key_id, provider, model, priced;
