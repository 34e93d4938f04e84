"""Dead letters keep where the message came from, why it failed, and its bytes."""

from __future__ import annotations

from faust.types import Message

from processors.dlq import MAX_PAYLOAD_CHARS, dead_letter_for


def message(value: bytes | None, key: bytes | None = b"key-1") -> Message:
    return Message(
        topic="t.requests",
        partition=1,
        offset=42,
        timestamp=0.0,
        timestamp_type=0,
        headers=[],
        key=key,
        value=value,
        checksum=None,
    )


def test_dead_letter_records_origin_reason_and_payload() -> None:
    letter = dead_letter_for(message(b"\xffnot json"), "invalid RequestEvent: x", "processors.cost")

    assert (letter.original_topic, letter.original_partition, letter.original_offset) == (
        "t.requests",
        1,
        42,
    )
    assert letter.original_key == "key-1"
    assert letter.error == "invalid RequestEvent: x"
    assert letter.stage == "processors.cost"
    assert letter.payload == "\ufffdnot json"


def test_null_key_and_value_are_kept_as_such() -> None:
    letter = dead_letter_for(message(None, key=None), "empty", "processors.cost")

    assert letter.original_key is None
    assert letter.payload == ""


def test_huge_payload_is_truncated_and_says_so() -> None:
    letter = dead_letter_for(message(b"x" * (MAX_PAYLOAD_CHARS + 10)), "bad", "processors.cost")

    assert len(letter.payload) == MAX_PAYLOAD_CHARS
    assert "truncated" in letter.error
