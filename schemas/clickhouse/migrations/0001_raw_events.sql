-- Raw events from the gateway and the cost processor (ARCHITECTURE §4, §6).
-- {{database}} is replaced by meterline.warehouse with the configured database name.
--
-- Idempotency: ReplacingMergeTree with event_id last in the sorting key, so replays of the
-- same event converge on merge (query with FINAL); the sink also drops already-stored
-- event_ids before inserting (bloom_filter index below), which keeps the spend_daily view
-- exact.  Every sorting-key column is a pure function of the event, so a replay lands in
-- the same partition and key.
--
-- Retention (obvious constants, change here and in a new migration):
--   DETAIL_TTL_DAYS = 90   requests, spans, guardrail_events
--   MONEY_TTL_DAYS  = 400  costs (the source of rebuild-aggregates and FOCUS exports)

CREATE TABLE IF NOT EXISTS {{database}}.requests
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    source LowCardinality(String),
    schema_version UInt16,
    request_id String,
    ts_start DateTime64(3, 'UTC'),
    ts_end DateTime64(3, 'UTC'),
    latency_ms Float64,
    ttft_ms Nullable(Float64),
    key_id String,
    org LowCardinality(String),
    team LowCardinality(String),
    project LowCardinality(String),
    `user` String,
    session_id String,
    trace_id String,
    app LowCardinality(String),
    client_ip String,
    user_agent String,
    provider LowCardinality(String),
    model_requested LowCardinality(String),
    model_used LowCardinality(String),
    endpoint LowCardinality(String),
    stream Bool,
    status_code Int32,
    error_type LowCardinality(String),
    input_tokens Int64,
    output_tokens Int64,
    cache_read_tokens Int64,
    cache_write_tokens Int64,
    reasoning_tokens Int64,
    max_tokens_requested Nullable(Int64),
    prompt_hash String,
    prompt_chars Int64,
    response_chars Int64,
    tool_call_names Array(String),
    tool_call_argument_hashes Array(String),
    finish_reason LowCardinality(String),
    enforcement Map(String, String),
    guardrail_names Array(String),
    guardrail_stages Array(String),
    guardrail_actions Array(String),
    guardrail_categories Array(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (toDate(ts), org, team, project, key_id, event_id)
TTL toDateTime(ts) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS {{database}}.spans
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    source LowCardinality(String),
    schema_version UInt16,
    trace_id String,
    span_id String,
    parent_span_id String,
    name String,
    kind LowCardinality(String),
    start_ts DateTime64(3, 'UTC'),
    end_ts DateTime64(3, 'UTC'),
    duration_ms Float64,
    status LowCardinality(String),
    service_name LowCardinality(String),
    key_id String,
    org LowCardinality(String),
    team LowCardinality(String),
    project LowCardinality(String),
    `user` String,
    session_id String,
    provider LowCardinality(String),
    model LowCardinality(String),
    operation LowCardinality(String),
    input_tokens Int64,
    output_tokens Int64,
    cache_read_tokens Int64,
    cache_write_tokens Int64,
    tool_name String,
    tool_arguments_hash String,
    finish_reasons Array(String),
    attributes Map(String, String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(start_ts)
ORDER BY (toDate(start_ts), org, team, project, key_id, event_id)
TTL toDateTime(start_ts) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS {{database}}.guardrail_events
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    source LowCardinality(String),
    schema_version UInt16,
    request_id String,
    key_id String,
    org LowCardinality(String),
    team LowCardinality(String),
    project LowCardinality(String),
    guardrail LowCardinality(String),
    stage LowCardinality(String),
    action LowCardinality(String),
    category LowCardinality(String),
    confidence Float64,
    excerpt String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (toDate(ts), org, team, project, key_id, event_id)
TTL toDateTime(ts) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS {{database}}.costs
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    source LowCardinality(String),
    schema_version UInt16,
    request_id String,
    source_type LowCardinality(String),
    request_ts DateTime64(3, 'UTC'),
    key_id String,
    org LowCardinality(String),
    team LowCardinality(String),
    project LowCardinality(String),
    `user` String,
    session_id String,
    provider LowCardinality(String),
    model LowCardinality(String),
    input_tokens Int64,
    output_tokens Int64,
    cache_read_tokens Int64,
    cache_write_tokens Int64,
    input_cost Decimal(38, 18),
    output_cost Decimal(38, 18),
    cache_read_cost Decimal(38, 18),
    cache_write_cost Decimal(38, 18),
    total_cost Decimal(38, 18),
    currency LowCardinality(String),
    price_source LowCardinality(String),
    priced Bool,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
-- Spend belongs to the day of the request, not of the pricing, and request_ts is fixed
-- for a request even when the processor re-prices it later.
PARTITION BY toYYYYMM(request_ts)
ORDER BY (toDate(request_ts), org, team, project, key_id, model, event_id)
TTL toDateTime(request_ts) + INTERVAL 400 DAY;
