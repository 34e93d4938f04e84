"""Events the broker can never take: tell them apart, shrink them, dead-letter them.

Two kinds of produce failure, and only two:

- *poison*: this record can never be produced, however long we wait (too large, invalid,
  not bytes). It must never sit at the head of the spool, or every later event would
  queue behind it forever (issue 10). It is reduced to a minimal event that still carries
  attribution and tokens, so the request is still metered, and the original is
  dead-lettered to the dlq topic with the reason (`schemas.events.DeadLetter`, the same
  contract the processors and ingest write).
- anything else: the broker, not the record, is the problem (down, leaderless, topic
  missing, not authorized). The event is kept and retried in order; the gateway reports
  `degraded` while events wait. A record is never dropped on a guess.

Off the hot path: none of this runs unless a produce fails.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson
from confluent_kafka import KafkaError
from pydantic import ValidationError

from gateway.bounds import MAX_TEXT_CHARS
from schemas.events.v1 import EVENT_ADAPTERS, DeadLetter
from schemas.ids import deterministic_id

__all__ = [
    "DEAD_LETTER_STAGE",
    "RECORD_OVERHEAD_BYTES",
    "dead_letter",
    "describe",
    "minimal_event",
]

DEAD_LETTER_STAGE: Final = "gateway.emitter"
# librdkafka counts a record's framing against message.max.bytes: measured 36 bytes for a
# record without headers (confluent-kafka 2.16); a margin above that, so an event judged
# to fit here is never refused by produce() for its size.
RECORD_OVERHEAD_BYTES: Final = 64
# As processors/dlq.py and ingest/sink/routing.py: a dead letter keeps at most 64 KiB of text.
_MAX_PAYLOAD_CHARS: Final = 64 * 1024
_MAX_ERROR_CHARS: Final = 1000


def describe(error: KafkaError) -> str:
    return f"{error.name()}: {error.str()}"


def _reduced(value: Any) -> Any:
    # Strings are clipped, collections emptied: every list and dict field of an event has
    # an empty default (tool_calls, guardrails, enforcement, attributes, ...).
    if isinstance(value, str):
        return value[:MAX_TEXT_CHARS]
    if isinstance(value, list):
        return []
    if isinstance(value, dict):
        return {}
    return value


def minimal_event(value: bytes) -> bytes | None:
    """The event with its big optional fields dropped and its strings clipped, or None
    when `value` is not an event we know.

    Keeps the envelope (same `event_id`, so a sink stores it once), attribution, model,
    status and every token count: enough for cost, budgets and detection. The result is
    validated against its schema model, so a reduction never produces a bad event.
    """
    try:
        event = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        return None
    if not isinstance(event, dict):
        return None
    event_type = event.get("event_type")
    adapter = EVENT_ADAPTERS.get(event_type) if isinstance(event_type, str) else None
    if adapter is None or event_type == "dead_letter":
        return None
    reduced = {name: _reduced(field) for name, field in event.items()}
    try:
        adapter.validate_python(reduced)
    except ValidationError:
        return None
    return orjson.dumps(reduced)


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else bytes(value).decode("utf-8", errors="replace")


def dead_letter(topic: str, key: bytes, value: Any, reason: str, max_bytes: int) -> bytes:
    """The DeadLetter for a record that can never be produced, at most `max_bytes` long.

    Its id is derived from the record, so the same poison dead-lettered twice (a retry
    after a restart) is stored once.
    """
    raw = value if isinstance(value, bytes | str) else repr(value)
    payload = _text(raw)
    digest = hashlib.sha256(payload.encode()).hexdigest()
    limit = _MAX_PAYLOAD_CHARS
    while True:
        error = reason[:_MAX_ERROR_CHARS]
        if len(payload) > limit:
            error = f"{error} (payload truncated from {len(payload)} chars)"
        letter = DeadLetter(
            event_id=deterministic_id(DEAD_LETTER_STAGE, topic, digest),
            source="gateway",
            original_topic=topic,
            original_key=_text(key) if key else None,
            error=error,
            stage=DEAD_LETTER_STAGE,
            payload=payload[:limit],
        ).to_json()
        # JSON escaping can grow the payload: cut it until the letter itself fits.
        if len(letter) + len(key) + RECORD_OVERHEAD_BYTES <= max_bytes or limit == 0:
            return letter
        limit //= 2
