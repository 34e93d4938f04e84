-- Derived events from the processors (budgets, anomalies, drift, enforcement).
-- Retention (obvious constants):
--   AGGREGATE_TTL_DAYS = 400   budget_states, drift_reports
--   SECURITY_TTL_DAYS  = 730   anomalies (evidence for incident reviews)
--   AUDIT_TTL_DAYS     = 1825  enforcement_decisions (who was blocked, when, why)

CREATE TABLE IF NOT EXISTS {{database}}.budget_states
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    source LowCardinality(String),
    schema_version UInt16,
    budget_id String,
    subject String,
    period LowCardinality(String),
    period_start DateTime64(3, 'UTC'),
    period_end DateTime64(3, 'UTC'),
    spent_usd Decimal(38, 18),
    limit_usd Decimal(38, 18),
    percent_used Float64,
    burn_rate_usd_per_hour Decimal(38, 18),
    projected_exhaustion Nullable(DateTime64(3, 'UTC')),
    status LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (budget_id, ts, event_id)
TTL toDateTime(ts) + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS {{database}}.anomalies
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    source LowCardinality(String),
    schema_version UInt16,
    anomaly_id String,
    kind LowCardinality(String),
    subject String,
    score Float64,
    severity LowCardinality(String),
    signals Array(String),
    evidence String, -- JSON object, free-form per detector
    recommended_action LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (toDate(ts), kind, subject, event_id)
TTL toDateTime(ts) + INTERVAL 730 DAY;

CREATE TABLE IF NOT EXISTS {{database}}.drift_reports
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    source LowCardinality(String),
    schema_version UInt16,
    scope String,
    metric LowCardinality(String),
    statistic LowCardinality(String),
    value Float64,
    threshold Float64,
    drifted Bool,
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    reference_start Nullable(DateTime64(3, 'UTC')),
    reference_end Nullable(DateTime64(3, 'UTC')),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (toDate(ts), scope, metric, event_id)
TTL toDateTime(ts) + INTERVAL 400 DAY;

-- One row per decision and per lift (a tombstone on the compacted topic becomes
-- action = 'lift'), so the table is the audit trail of every block.
CREATE TABLE IF NOT EXISTS {{database}}.enforcement_decisions
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    schema_version UInt16,
    subject String,
    action LowCardinality(String),
    reason String,
    source LowCardinality(String), -- budget | llmjacking | agent_loop | guardrail | manual
    rpm Nullable(Int64),
    expires_at Nullable(DateTime64(3, 'UTC')),
    decided_at DateTime64(3, 'UTC'),
    anomaly_id String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (toDate(ts), subject, event_id)
TTL toDateTime(ts) + INTERVAL 1825 DAY;
