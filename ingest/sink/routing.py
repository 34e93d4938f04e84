"""From Kafka messages to table rows, or to dead letters saying why not.

Pure logic (no Kafka client, no database): the consumer hands in the messages' parts.
`route_many` decodes a batch per topic through the columnar fast path
(schemas.clickhouse.columnar) and sends what it does not take to `route`: pydantic
validation and row mapping per message.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import orjson
import pyarrow as pa
from pydantic import ValidationError

from schemas import topics
from schemas.clickhouse.columnar import ColumnDecoder, compile_decoder
from schemas.clickhouse.tables import (
    TABLE_FOR_EVENT_TYPE,
    TABLES,
    RowMappingError,
    control_tombstone_row,
    enforcement_lift_row,
    row_for,
    utc_from_ms,
)
from schemas.clickhouse.tables import Row as Row
from schemas.enforcement import ACTOR_HEADER
from schemas.events.v1 import (
    EVENT_ADAPTERS,
    POLICY_RECORD_MODELS,
    Anomaly,
    BudgetRecord,
    BudgetState,
    CostEvent,
    DeadLetter,
    DriftReport,
    EnforcementDecision,
    Event,
    GuardrailEvent,
    IngestTokenRecord,
    KeyRecord,
    RequestEvent,
    SpanEvent,
)
from schemas.ids import deterministic_id

__all__ = ["STAGE", "Decoded", "Record", "Rejected", "Routed", "Router"]

STAGE = "ingest.sink"
_MAX_PAYLOAD_CHARS = 65_536
_MAX_ERROR_CHARS = 2_000

# The event models each topic may carry (ARCHITECTURE §3).
TOPIC_MODELS: dict[str, tuple[type[Event], ...]] = {
    topics.REQUESTS: (RequestEvent,),
    topics.SPANS: (SpanEvent,),
    topics.GUARDRAILS: (GuardrailEvent,),
    topics.COSTS: (CostEvent,),
    topics.BUDGETS: (BudgetState,),
    topics.ANOMALIES: (Anomaly,),
    topics.DRIFT: (DriftReport,),
    topics.ENFORCEMENT: (EnforcementDecision,),
    topics.CONTROL: (KeyRecord, IngestTokenRecord, BudgetRecord, *POLICY_RECORD_MODELS),
    topics.DLQ: (DeadLetter,),
}


class Record(NamedTuple):
    """The parts of a Kafka message the sink uses."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    headers: Sequence[tuple[str, bytes | None]] | None = None  # read for tombstones only


@dataclass(frozen=True, slots=True)
class Decoded:
    """Many valid events of one table, already as Arrow columns (the fast path)."""

    table: str
    columns: pa.Table


@dataclass(frozen=True, slots=True)
class Routed:
    table: str
    row: Row


@dataclass(frozen=True, slots=True)
class Rejected:
    dead_letter: DeadLetter
    # Publish to the dlq topic too? Not for what came from the dlq topic itself.
    publish: bool


class Router:
    """Knows the topic names of one deployment (their prefix) and decodes messages."""

    def __init__(self, topic_prefix: str) -> None:
        self.prefix = topic_prefix
        self._models = {f"{topic_prefix}{base}": models for base, models in TOPIC_MODELS.items()}
        # Several event types share a topic (control): dispatch on event_type, then let the
        # type's validator pick the model (policies: one per kind).
        self._by_type = {
            full: {
                event_type: EVENT_ADAPTERS[event_type]
                for event_type in {model.model_fields["event_type"].default for model in models}
            }
            for full, models in self._models.items()
        }
        self.dlq_topic = f"{topic_prefix}{topics.DLQ}"
        self._decoders: dict[str, ColumnDecoder] = {}
        for full, models in self._models.items():
            if len(models) != 1:
                continue  # several event types share the topic: pydantic dispatches
            table = TABLE_FOR_EVENT_TYPE[models[0].model_fields["event_type"].default]
            decoder = compile_decoder(models[0], TABLES[table])
            if decoder is not None:
                self._decoders[full] = decoder

    @property
    def topics(self) -> list[str]:
        return list(self._models)

    def route_many(self, records: Sequence[Record]) -> list[Decoded | Routed | Rejected]:
        """Route a batch: per topic, the fast path takes what it can, `route` the rest."""
        return self.route_values(
            [record.topic for record in records],
            [record.value for record in records],
            records.__getitem__,
        )

    def route_values(
        self,
        topics: Sequence[str],
        values: Sequence[bytes | None],
        record: Callable[[int], Record],
    ) -> list[Decoded | Routed | Rejected]:
        """`route_many` of the messages whose topics and values these are; `record(i)`
        gives the whole message i, needed only by the slow path (the consumer builds
        none for the fast path: ~1 us per message)."""
        if not topics:
            return []
        first = topics[0]
        if topics.count(first) == len(topics):
            by_topic: dict[str, list[int]] = {first: list(range(len(topics)))}
        else:
            by_topic = defaultdict(list)
            for i, topic in enumerate(topics):
                by_topic[topic].append(i)
        results: list[Decoded | Routed | Rejected] = []
        for topic, indices in by_topic.items():
            decoder = self._decoders.get(topic)
            if decoder is None:
                results.extend(self.route(*record(i)) for i in indices)
                continue
            columns, failed = decoder.decode([values[i] for i in indices])
            if columns is not None:
                results.append(Decoded(decoder.spec.name, columns))
            # The slow path says what is wrong (or handles the tombstone).
            results.extend(self.route(*record(indices[i])) for i in failed)
        return results

    def route(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
    ) -> Routed | Rejected:
        models = self._models.get(topic)
        if models is None:
            return self._reject(
                topic, partition, offset, key, value, timestamp_ms, f"unexpected topic {topic!r}"
            )
        if value is None:
            return self._tombstone(topic, partition, offset, key, value, timestamp_ms, headers)
        try:
            event = self._decode(topic, models, value)
            table, row = row_for(event)
        except (ValidationError, ValueError, RowMappingError) as exc:
            return self._reject(topic, partition, offset, key, value, timestamp_ms, _describe(exc))
        return Routed(table, row)

    def _decode(self, topic: str, models: tuple[type[Event], ...], value: bytes) -> Event:
        if len(models) == 1:
            # Fast path: pydantic parses the JSON itself (no intermediate dict).
            return models[0].model_validate_json(value)
        data = orjson.loads(value)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        event_type = data.get("event_type")
        adapter = self._by_type[topic].get(event_type) if isinstance(event_type, str) else None
        if adapter is None:
            allowed = sorted(self._by_type[topic])
            raise ValueError(f"event_type {event_type!r} is not one of {allowed} on {topic}")
        event: Event = adapter.validate_python(data)
        return event

    def _tombstone(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
    ) -> Routed | Rejected:
        """Null values lift a block (enforcement) or delete a record (control)."""
        key_text = key.decode(errors="replace") if key else ""
        # The broker's timestamp is part of the id: an embedded-broker restart starts the
        # offsets again from 0, and a later tombstone must not look like an earlier one.
        event_id = deterministic_id(
            "tombstone", topic, str(partition), str(offset), str(timestamp_ms)
        )
        ts = utc_from_ms(timestamp_ms)
        if topic == f"{self.prefix}{topics.ENFORCEMENT}" and key_text:
            row = enforcement_lift_row(event_id, ts, key_text, _actor(headers))
            return Routed("enforcement_decisions", row)
        if topic == f"{self.prefix}{topics.CONTROL}" and ":" in key_text:
            return Routed("control_records", control_tombstone_row(event_id, ts, key_text))
        return self._reject(
            topic,
            partition,
            offset,
            key,
            value,
            timestamp_ms,
            "empty message (null value) on a topic without tombstones",
        )

    def _reject(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        error: str,
    ) -> Rejected:
        payload = value.decode(errors="replace") if value is not None else ""
        dead_letter = DeadLetter(
            # Same message, same id and time: a replayed bad message is stored once.
            event_id=deterministic_id(STAGE, topic, str(partition), str(offset)),
            ts=_ts(timestamp_ms),
            source="ingest",
            original_topic=topic,
            original_partition=partition,
            original_offset=offset,
            original_key=key.decode(errors="replace") if key is not None else None,
            error=error[:_MAX_ERROR_CHARS],
            stage=STAGE,
            payload=payload[:_MAX_PAYLOAD_CHARS],
        )
        return Rejected(dead_letter, publish=topic != self.dlq_topic)


def _ts(timestamp_ms: int | None) -> datetime:
    return utc_from_ms(timestamp_ms)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_url=False)[:10]
        ]
        return f"validation failed ({exc.error_count()} errors): " + "; ".join(parts)
    return f"{type(exc).__name__}: {exc}"


def _actor(headers: Sequence[tuple[str, bytes | None]] | None) -> str:
    """Who lifted a decision: the admin API's actor header on the tombstone, else ""."""
    for name, value in headers or ():
        if name == ACTOR_HEADER and value:
            return value.decode(errors="replace")[:256]
    return ""
