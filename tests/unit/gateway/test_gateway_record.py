from __future__ import annotations

import orjson

from gateway.keys import KeyInfo
from gateway.record import RequestRecord
from gateway.usage import ResponseSummary
from schemas.events import RequestEvent


def test_request_record_is_a_valid_request_event() -> None:
    record = RequestRecord(endpoint="/v1/chat/completions")
    record.key = KeyInfo(key_id="key_1", key_hash="h" * 64, org="acme", team="t", user="u")
    record.model_requested = "m"
    record.session_id = "s1"
    record.mark_first_token()
    record.summary = ResponseSummary(
        model_used="m-2024",
        input_tokens=5,
        output_tokens=7,
        cache_read_tokens=2,
        reasoning_tokens=1,
        tool_calls=[{"name": "f", "arguments_hash": "a" * 64}],
    )
    event = RequestEvent.model_validate_json(orjson.dumps(record.to_event()))
    assert event.event_type == "request"
    assert event.schema_version == 1 and event.source == "gateway" and event.event_id
    assert event.request_id == record.request_id
    assert (event.key_id, event.org, event.team, event.user) == ("key_1", "acme", "t", "u")
    assert (
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.reasoning_tokens,
    ) == (5, 7, 2, 1)
    assert event.tool_calls[0].name == "f"
    assert event.ts_end >= event.ts_start and event.latency_ms >= 0
    assert event.ttft_ms is not None


def test_an_unauthenticated_failure_is_still_a_valid_event() -> None:
    record = RequestRecord(endpoint="/v1/embeddings", status_code=401, error_type="invalid_api_key")
    event = RequestEvent.model_validate(record.to_event())
    assert event.key_id is None and event.org == "" and event.status_code == 401
