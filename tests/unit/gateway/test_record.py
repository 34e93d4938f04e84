from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from gateway.keys import KeyInfo
from gateway.record import RequestRecord
from gateway.usage import ResponseSummary
from schemas.events import RequestEvent, validate_produced


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


def _full_record() -> RequestRecord:
    """A record with every optional part set, so no key is left at a null-able default."""
    record = RequestRecord(endpoint="/v1/chat/completions", stream=True)
    record.key = KeyInfo(key_id="key_1", key_hash="h" * 64, org="acme", team="t", user="u")
    for name in ("session_id", "trace_id", "app", "client_ip", "user_agent", "provider"):
        setattr(record, name, name)
    record.model_requested = "m"
    record.error_type = "upstream_error"
    record.max_tokens_requested = 64
    record.prompt_hash = "p" * 64
    record.prompt_chars = 12
    record.prompt_signature = "0" * 32
    record.enforcement = {"action": "throttle"}
    record.guardrails = [
        {"guardrail": "pii", "stage": "input", "action": "redact", "category": "email"}
    ]
    record.mark_first_token()
    record.summary = ResponseSummary(
        model_used="m-2024",
        input_tokens=5,
        output_tokens=7,
        finish_reason="stop",
        tool_calls=[{"name": "f", "arguments_hash": "a" * 64}],
    )
    return record


@pytest.mark.parametrize(
    "record",
    [_full_record(), RequestRecord(endpoint="/v1/embeddings", status_code=401)],
    ids=["full", "bare"],
)
def test_the_gateway_dict_is_exactly_a_request_event(record: RequestRecord) -> None:
    """Key set equal to the model's fields, every value of the field's type (strict, no
    unknown field at any depth): the fast-path dict cannot drift from the contract."""
    event = record.to_event()
    assert set(event) == set(RequestEvent.model_fields)
    validate_produced(RequestEvent, orjson.dumps(event))


@pytest.mark.parametrize(
    "drift",
    [
        lambda e: e.update(input_tokns=e.pop("input_tokens")),  # misspelled
        lambda e: e.pop("finish_reason"),  # missing (the model would default it)
        lambda e: e.update(surprise=1),  # extra
        lambda e: e.update(input_tokens="5"),  # a number as text
        lambda e: e.update(stream=1),  # an int for a bool
        lambda e: e.update(status_code=200.0),  # a float for an int
        lambda e: e.update(org=None),  # null where the model wants a str
        lambda e: e["tool_calls"][0].update(argument_hash="x"),  # nested misspelling
        lambda e: e["guardrails"][0].update(stage="both"),  # not one of the Literal's
    ],
)
def test_the_dict_check_fails_on_drift(drift: Callable[[dict[str, Any]], object]) -> None:
    event = _full_record().to_event()
    drift(event)
    with pytest.raises((AssertionError, ValidationError)):
        assert set(event) == set(RequestEvent.model_fields)
        validate_produced(RequestEvent, orjson.dumps(event))


def test_consumers_still_ignore_fields_they_do_not_know() -> None:
    event = _full_record().to_event() | {"added_in_a_newer_producer": 1}
    assert RequestEvent.model_validate_json(orjson.dumps(event)).request_id == event["request_id"]
