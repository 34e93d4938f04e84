-- Each raw table's partition/TTL time column must lie in DateTime64's documented range,
-- 1900-01-01 to 2299-12-31. ClickHouse stores a value outside it without complaint but then
-- mangles it (toDate/toDateTime clamp: such a row can expire at insert and vanish from the
-- table, or land in a wrong month); with the constraint ClickHouse refuses the row, and the
-- sink dead-letters exactly that row with ClickHouse's reason (ingest/sinks/clickhouse.py).

ALTER TABLE {{database}}.requests
    ADD CONSTRAINT IF NOT EXISTS ts_in_range
    CHECK ts >= toDateTime64('1900-01-01 00:00:00', 3, 'UTC')
      AND ts < toDateTime64('2300-01-01 00:00:00', 3, 'UTC');

ALTER TABLE {{database}}.spans
    ADD CONSTRAINT IF NOT EXISTS start_ts_in_range
    CHECK start_ts >= toDateTime64('1900-01-01 00:00:00', 3, 'UTC')
      AND start_ts < toDateTime64('2300-01-01 00:00:00', 3, 'UTC');

ALTER TABLE {{database}}.guardrail_events
    ADD CONSTRAINT IF NOT EXISTS ts_in_range
    CHECK ts >= toDateTime64('1900-01-01 00:00:00', 3, 'UTC')
      AND ts < toDateTime64('2300-01-01 00:00:00', 3, 'UTC');

ALTER TABLE {{database}}.costs
    ADD CONSTRAINT IF NOT EXISTS request_ts_in_range
    CHECK request_ts >= toDateTime64('1900-01-01 00:00:00', 3, 'UTC')
      AND request_ts < toDateTime64('2300-01-01 00:00:00', 3, 'UTC');

ALTER TABLE {{database}}.budget_states
    ADD CONSTRAINT IF NOT EXISTS ts_in_range
    CHECK ts >= toDateTime64('1900-01-01 00:00:00', 3, 'UTC')
      AND ts < toDateTime64('2300-01-01 00:00:00', 3, 'UTC');

ALTER TABLE {{database}}.anomalies
    ADD CONSTRAINT IF NOT EXISTS ts_in_range
    CHECK ts >= toDateTime64('1900-01-01 00:00:00', 3, 'UTC')
      AND ts < toDateTime64('2300-01-01 00:00:00', 3, 'UTC');

ALTER TABLE {{database}}.drift_reports
    ADD CONSTRAINT IF NOT EXISTS ts_in_range
    CHECK ts >= toDateTime64('1900-01-01 00:00:00', 3, 'UTC')
      AND ts < toDateTime64('2300-01-01 00:00:00', 3, 'UTC');

ALTER TABLE {{database}}.enforcement_decisions
    ADD CONSTRAINT IF NOT EXISTS ts_in_range
    CHECK ts >= toDateTime64('1900-01-01 00:00:00', 3, 'UTC')
      AND ts < toDateTime64('2300-01-01 00:00:00', 3, 'UTC');

ALTER TABLE {{database}}.control_records
    ADD CONSTRAINT IF NOT EXISTS ts_in_range
    CHECK ts >= toDateTime64('1900-01-01 00:00:00', 3, 'UTC')
      AND ts < toDateTime64('2300-01-01 00:00:00', 3, 'UTC');

ALTER TABLE {{database}}.dead_letters
    ADD CONSTRAINT IF NOT EXISTS ts_in_range
    CHECK ts >= toDateTime64('1900-01-01 00:00:00', 3, 'UTC')
      AND ts < toDateTime64('2300-01-01 00:00:00', 3, 'UTC');
