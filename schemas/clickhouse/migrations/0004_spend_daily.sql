-- Daily spend by attribution, fed from costs by a materialized view (showback).
-- A materialized view sees every insert block, so a duplicate insert into costs would be
-- counted twice: the sink drops already-stored event_ids before inserting, and
-- `meterline warehouse rebuild-aggregates` refills this table from costs FINAL.
-- Retention (obvious constant): AGGREGATE_TTL_DAYS = 1095.

CREATE TABLE IF NOT EXISTS {{database}}.spend_daily
(
    day Date,
    org LowCardinality(String),
    team LowCardinality(String),
    project LowCardinality(String),
    key_id String,
    provider LowCardinality(String),
    model LowCardinality(String),
    priced Bool,
    cost_usd Decimal(38, 18),
    input_cost_usd Decimal(38, 18),
    output_cost_usd Decimal(38, 18),
    cache_read_cost_usd Decimal(38, 18),
    cache_write_cost_usd Decimal(38, 18),
    input_tokens Int64,
    output_tokens Int64,
    cache_read_tokens Int64,
    cache_write_tokens Int64,
    requests UInt64,
    unpriced_requests UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, org, team, project, key_id, provider, model, priced)
TTL day + INTERVAL 1095 DAY;

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
    countIf(NOT priced) AS unpriced_requests
FROM {{database}}.costs
GROUP BY day, org, team, project, key_id, provider, model, priced;
