-- Requests the gateway refused before any provider saw them (issue 15): their cost row
-- says so (`rejected`, cost exactly 0, priced), and spend_daily counts them apart, so
-- showback never shows a refusal as unpriced spend.
ALTER TABLE {{database}}.costs
    ADD COLUMN IF NOT EXISTS rejected Bool DEFAULT false AFTER saved_cost;

ALTER TABLE {{database}}.spend_daily
    ADD COLUMN IF NOT EXISTS rejected_requests UInt64 AFTER cache_hits;

-- The view gains the measure (recreated as in 0008; this runs once, at start, before the
-- sink writes). `meterline warehouse rebuild-aggregates` reads this, the latest
-- spend_daily_mv, as its refill.
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
    countIf(cache IN ('hit', 'semantic_hit')) AS cache_hits,
    countIf(rejected) AS rejected_requests
FROM {{database}}.costs
GROUP BY day, org, team, project, key_id, provider, model, priced;
