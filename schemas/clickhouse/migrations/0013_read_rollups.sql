-- Rollups that keep every dashboard page under a second at 50 million stored requests
-- (issue 13, bench/read_api.py). A materialized view sees every insert block; the sink
-- drops already-stored event_ids before inserting, so each row is counted once.
--
-- 1. spend_daily gains `user`. A request's user is its key's owner (gateway/record.py),
--    so this adds no rows in practice, and showback by user, or filtered by user, reads
--    spend_daily instead of scanning costs FINAL.
ALTER TABLE {{database}}.spend_daily
    ADD COLUMN IF NOT EXISTS `user` String AFTER key_id,
    MODIFY ORDER BY (day, org, team, project, key_id, provider, model, priced, `user`);

-- The view gains the dimension (recreated as in 0008 and 0009; this runs once, at start,
-- before the sink writes). `meterline warehouse rebuild-aggregates` reads this, the
-- latest spend_daily_mv, as its refill.
DROP VIEW IF EXISTS {{database}}.spend_daily_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.spend_daily_mv TO {{database}}.spend_daily AS
SELECT
    toDate(request_ts) AS day,
    org,
    team,
    project,
    key_id,
    `user`,
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
    countIf(cache IN ('hit', 'semantic_hit')) AS cache_hits,
    countIf(rejected) AS rejected_requests
FROM {{database}}.costs
GROUP BY day, org, team, project, key_id, `user`, provider, model, priced;

-- 2. requests_daily: the operations page's statistics per day, attribution (without the
--    key: a key's own statistics scan requests), model, provider, outcome and cache use.
--    Percentiles are t-digest states (quantilesTDigest: ~1% relative error, merged across
--    rows); counts and sums are exact. ingest/api/operations.py reads it for whole-day
--    ranges of many requests without a key filter.
CREATE TABLE IF NOT EXISTS {{database}}.requests_daily
(
    day Date,
    org LowCardinality(String),
    team LowCardinality(String),
    project LowCardinality(String),
    model_used LowCardinality(String),
    provider LowCardinality(String),
    status_code Int32,
    error_type LowCardinality(String),
    cache LowCardinality(String),
    requests SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, Int64),
    output_tokens SimpleAggregateFunction(sum, Int64),
    latency_ms_sum SimpleAggregateFunction(sum, Float64),
    latency_digest AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64),
    ttft_digest AggregateFunction(quantileTDigest(0.5), Nullable(Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, org, team, project, model_used, provider, status_code, error_type, cache)
TTL day + INTERVAL 90 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.requests_daily_mv TO {{database}}.requests_daily AS
SELECT
    toDate(ts) AS day,
    org,
    team,
    project,
    model_used,
    provider,
    status_code,
    error_type,
    cache,
    count() AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(latency_ms) AS latency_ms_sum,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms) AS latency_digest,
    quantileTDigestState(0.5)(ttft_ms) AS ttft_digest
FROM {{database}}.requests
GROUP BY day, org, team, project, model_used, provider, status_code, error_type, cache;

-- 3. Both rollups refilled from the raw rows once, so the days stored before this
--    migration have the new user dimension and statistics too (TRUNCATE first: re-running
--    an interrupted migration counts nothing twice). Later repairs: `meterline warehouse
--    rebuild-aggregates` refills every rollup from its view's SELECT.
TRUNCATE TABLE {{database}}.spend_daily;

INSERT INTO {{database}}.spend_daily
SELECT
    toDate(request_ts) AS day,
    org,
    team,
    project,
    key_id,
    `user`,
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
    countIf(cache IN ('hit', 'semantic_hit')) AS cache_hits,
    countIf(rejected) AS rejected_requests
FROM {{database}}.costs FINAL
GROUP BY day, org, team, project, key_id, `user`, provider, model, priced;

TRUNCATE TABLE {{database}}.requests_daily;

INSERT INTO {{database}}.requests_daily
SELECT
    toDate(ts) AS day,
    org,
    team,
    project,
    model_used,
    provider,
    status_code,
    error_type,
    cache,
    count() AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(latency_ms) AS latency_ms_sum,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms) AS latency_digest,
    quantileTDigestState(0.5)(ttft_ms) AS ttft_digest
FROM {{database}}.requests FINAL
GROUP BY day, org, team, project, model_used, provider, status_code, error_type, cache;
