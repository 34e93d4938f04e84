from __future__ import annotations

import orjson
import pytest
from confluent_kafka import KafkaError

from gateway.emit.poison import dead_letter, minimal_event
from gateway.keys import KeyInfo
from gateway.record import RequestRecord
from gateway.usage import ResponseSummary
from meterline.kafka import is_record_error
from schemas.events.v1 import DeadLetter, RequestEvent, SpanEvent


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError.POLICY_VIOLATION,
        KafkaError._BAD_MSG,
        KafkaError._INVALID_ARG,
        KafkaError._VALUE_SERIALIZATION,
    ],
)
def test_record_errors_are_poison(code: int) -> None:
    assert is_record_error(KafkaError(code))


@pytest.mark.parametrize(
    "code",
    [
        KafkaError._TRANSPORT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._PURGE_QUEUE,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,  # the broker's setup, not the record: keep it
    ],
)
def test_broker_errors_are_not_poison(code: int) -> None:
    assert not is_record_error(KafkaError(code))


def _big_request_event() -> dict:
    record = RequestRecord(endpoint="/v1/chat/completions")
    record.key = KeyInfo(key_id="key_1", key_hash="h", org="acme", team="t", project="p", user="u")
    record.user_agent = "ua" * 300
    record.model_requested = "gpt-4o"
    record.provider = "openai"
    record.summary = ResponseSummary(
        model_used="gpt-4o-2024",
        input_tokens=1200,
        output_tokens=345,
        cache_read_tokens=7,
        reasoning_tokens=9,
        tool_calls=[{"name": "lookup", "arguments_hash": "ab" * 32}] * 5000,
    )
    record.guardrails = [
        {"guardrail": "pii", "stage": "input", "action": "monitor", "category": "email"}
    ]
    record.enforcement = {"action": "rate_limit", "subject": "key:key_1", "source": "key_rpm"}
    return record.to_event()


def test_minimal_event_keeps_metering_and_drops_the_bulk() -> None:
    event = _big_request_event()
    original = orjson.dumps(event)

    reduced = minimal_event(original)

    assert reduced is not None and len(reduced) < 4096 < len(original)
    parsed = RequestEvent.model_validate_json(reduced)
    assert parsed.event_id == event["event_id"] and parsed.request_id == event["request_id"]
    kept = ("key_id", "org", "team", "project", "user", "model_requested", "model_used")
    assert all(getattr(parsed, name) == event[name] for name in kept)
    tokens = ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens")
    assert [getattr(parsed, name) for name in tokens] == [1200, 345, 7, 9]
    assert parsed.tool_calls == [] and parsed.guardrails == [] and parsed.enforcement == {}
    assert parsed.user_agent == event["user_agent"][:256]


def test_minimal_event_of_a_span_empties_its_attributes() -> None:
    span = SpanEvent(
        trace_id="a" * 32,
        span_id="b" * 16,
        name="chat",
        start_ts="2025-01-01T00:00:00Z",
        end_ts="2025-01-01T00:00:01Z",
        duration_ms=1000,
        input_tokens=5,
        attributes={f"k{i}": "v" * 100 for i in range(1000)},
    )
    reduced = SpanEvent.model_validate_json(minimal_event(span.to_json()) or b"")
    assert reduced.attributes == {} and reduced.input_tokens == 5


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[1, 2]",
        b'{"event_type": "nonsense"}',
        b'{"event_type": "request", "request_id": "r"}',  # not a whole event
        DeadLetter(original_topic="t", error="e", stage="s", payload="p").to_json(),
    ],
)
def test_minimal_event_is_none_for_what_it_cannot_vouch_for(value: bytes) -> None:
    assert minimal_event(value) is None


def test_dead_letter_follows_the_contract_and_fits_the_limit() -> None:
    value = orjson.dumps(_big_request_event())
    letter_bytes = dead_letter("m.requests", b"key_1", value, "MSG_SIZE_TOO_LARGE: big", 20_000)

    letter = DeadLetter.model_validate_json(letter_bytes)
    assert len(letter_bytes) <= 20_000
    assert letter.original_topic == "m.requests" and letter.original_key == "key_1"
    assert letter.stage == "gateway.emitter" and letter.source == "gateway"
    assert letter.error.startswith("MSG_SIZE_TOO_LARGE: big")
    assert "payload truncated" in letter.error
    assert value.decode().startswith(letter.payload)
    again = dead_letter("m.requests", b"key_1", value, "MSG_SIZE_TOO_LARGE: big", 20_000)
    assert DeadLetter.model_validate_json(again).event_id == letter.event_id


def test_dead_letter_of_an_unserializable_value() -> None:
    letter = DeadLetter.model_validate_json(
        dead_letter("m.requests", b"", {"a": object}, "unserializable: not bytes", 10_000)
    )
    assert letter.original_key is None and "unserializable" in letter.error
    assert letter.payload.startswith("{'a'")
