-- What served each request (issue 12): the routing deployment, the API spoken to it, and
-- every try when there was more than one (retries and fallbacks), one array per attribute.
ALTER TABLE {{database}}.requests
    ADD COLUMN IF NOT EXISTS deployment LowCardinality(String) AFTER endpoint,
    ADD COLUMN IF NOT EXISTS upstream_api LowCardinality(String) AFTER deployment,
    ADD COLUMN IF NOT EXISTS attempt_groups Array(String) AFTER upstream_api,
    ADD COLUMN IF NOT EXISTS attempt_deployments Array(String) AFTER attempt_groups,
    ADD COLUMN IF NOT EXISTS attempt_providers Array(String) AFTER attempt_deployments,
    ADD COLUMN IF NOT EXISTS attempt_models Array(String) AFTER attempt_providers,
    ADD COLUMN IF NOT EXISTS attempt_statuses Array(Int32) AFTER attempt_models,
    ADD COLUMN IF NOT EXISTS attempt_latencies_ms Array(Float64) AFTER attempt_statuses,
    ADD COLUMN IF NOT EXISTS attempt_errors Array(String) AFTER attempt_latencies_ms;
