-- Control plane records (keys, budgets, policies) and the dead-letter store.
-- control_records keeps every version (who changed what, when): it is the audit log, and
-- the copy the control plane is restored from after an embedded-broker restart.
-- Retention (obvious constants):
--   AUDIT_TTL_DAYS       = 1825  control_records
--   DEAD_LETTER_TTL_DAYS = 90    dead_letters

CREATE TABLE IF NOT EXISTS {{database}}.control_records
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    source LowCardinality(String),
    schema_version UInt16,
    record_type LowCardinality(String), -- key | budget | policy
    record_id String,
    subject String,
    org LowCardinality(String),
    deleted Bool, -- revoked key, deleted budget or policy, or a tombstone
    who String,
    payload String, -- the whole record as JSON (secrets are never in it: keys carry a hash)
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (record_type, record_id, ts, event_id)
TTL toDateTime(ts) + INTERVAL 1825 DAY;

-- The latest version of each record.
CREATE VIEW IF NOT EXISTS {{database}}.control_current AS
SELECT
    record_type,
    record_id,
    argMax(subject, (ts, event_id)) AS subject,
    argMax(org, (ts, event_id)) AS org,
    argMax(deleted, (ts, event_id)) AS deleted,
    argMax(who, (ts, event_id)) AS updated_by,
    max(ts) AS updated_at,
    argMax(payload, (ts, event_id)) AS payload
FROM {{database}}.control_records
GROUP BY record_type, record_id;

CREATE TABLE IF NOT EXISTS {{database}}.dead_letters
(
    event_id String,
    ts DateTime64(3, 'UTC'),
    source LowCardinality(String),
    original_topic LowCardinality(String),
    original_partition Nullable(Int32),
    original_offset Nullable(Int64),
    original_key String,
    error String,
    stage LowCardinality(String),
    payload String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (toDate(ts), original_topic, event_id)
TTL toDateTime(ts) + INTERVAL 90 DAY;
