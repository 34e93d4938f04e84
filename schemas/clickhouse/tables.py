"""Every ClickHouse table the sink writes, and how an event becomes one of its rows,
derived from the `Column`s declared next to the event models' fields.

An event table's columns are its model's fields that carry a `schemas.clickhouse.column`
declaration (envelope first), in field order; its row mapper reads those fields. A field
added to a model with a `Column` is a column here at once, and
`tests/integration/test_warehouse.py` checks that the migrations create exactly
these columns with exactly these types. control_records is the one table that is not a
projection of one model (four record kinds share it), so its columns are declared below.
Rows are tuples in column order, so the sink can transpose a batch into Arrow columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

import orjson
import pyarrow as pa

from schemas.clickhouse import column as ch
from schemas.clickhouse.column import Column
from schemas.enforcement import LIFT
from schemas.events.v1 import (
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
from schemas.subjects import org_of
from schemas.topics import control_key, parse_control_key, parse_enforcement_key

__all__ = [
    "DEAD_LETTERS",
    "TABLES",
    "TABLE_FOR_EVENT_TYPE",
    "Row",
    "RowMappingError",
    "TableSpec",
    "arrow_type",
    "control_tombstone_row",
    "enforcement_lift_row",
    "money",
    "row_for",
    "utc_from_ms",
]

Row = tuple[Any, ...]

_ENVELOPE = ("event_id", "ts", "source", "schema_version")
_MONEY_QUANTUM = Decimal("1e-18")
_MONEY_CONTEXT = Context(prec=38)  # Decimal(38, 18): 20 integer digits, 18 fractional
_WRAPPER = re.compile(r"^(Nullable|LowCardinality)\((?P<inner>.*)\)$")
_ARROW_BASE: dict[str, pa.DataType] = {
    "String": pa.string(),
    "DateTime64(3, 'UTC')": pa.timestamp("ms", tz="UTC"),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "UInt16": pa.uint16(),
    "Float64": pa.float64(),
    "Bool": pa.bool_(),
    "Decimal(38, 18)": pa.decimal128(38, 18),
    "Array(String)": pa.list_(pa.string()),
    "Array(Int32)": pa.list_(pa.int32()),
    "Array(Float64)": pa.list_(pa.float64()),
    "Map(String, String)": pa.map_(pa.string(), pa.string()),
}


class RowMappingError(ValueError):
    """The event is valid but cannot be stored (e.g. money beyond Decimal(38, 18))."""


def arrow_type(clickhouse_type: str) -> pa.DataType:
    """The Arrow type the sink inserts into a column of `clickhouse_type` (nullability is
    Arrow's per value, LowCardinality is ClickHouse's storage detail)."""
    inner = clickhouse_type
    while (match := _WRAPPER.match(inner)) is not None:
        inner = match["inner"]
    try:
        return _ARROW_BASE[inner]
    except KeyError:
        raise ValueError(f"no Arrow type for ClickHouse type {clickhouse_type!r}") from None


def money(value: Decimal) -> Decimal:
    """Exact at 18 decimals; anything finer is rounded half-even (< 1e-18 USD)."""
    try:
        return value.quantize(_MONEY_QUANTUM, context=_MONEY_CONTEXT)
    except ArithmeticError as exc:
        raise RowMappingError(f"amount {value} does not fit Decimal(38, 18)") from exc


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, pa.DataType], ...]  # (name, Arrow type) in row order
    clickhouse_types: tuple[tuple[str, str], ...]  # (name, ClickHouse type), same order
    # The column whose range bounds the "already stored?" lookup; it is the partition
    # column, fixed for an event, so a replay lands in the same range.
    time_column: str
    # Per column: the model field it reads and, for a flattened list, the item attribute
    # (the fast path, schemas.clickhouse.columnar, reads the same). Empty for control_records.
    sources: tuple[tuple[str, str | None], ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(list(self.columns))

    def index_of(self, column: str) -> int:
        return self.column_names.index(column)


def _spec(name: str, declared: list[tuple[str, Column]], time_column: str, **kw: Any) -> TableSpec:
    return TableSpec(
        name,
        tuple((n, arrow_type(c.type)) for n, c in declared),
        tuple((n, c.type) for n, c in declared),
        time_column,
        **kw,
    )


def _declared(model: type[Event], omit: frozenset[str]) -> list[tuple[str, str, Column]]:
    """(field, column name, Column) of every stored field, envelope first."""
    found = [
        (field, column.name or field, column)
        for field, info in model.model_fields.items()
        if field not in omit
        for column in info.metadata
        if isinstance(column, Column)
    ]
    return sorted(found, key=lambda d: _ENVELOPE.index(d[0]) if d[0] in _ENVELOPE else 99)


def _reader(field: str, column: Column, optional: bool) -> Callable[[Any], Any]:
    """How one column's value is read from an event."""
    if column.item is not None:
        item = column.item
        return lambda e: [getattr(x, item) for x in getattr(e, field)]
    nullable = column.type.startswith("Nullable(")
    if column.json:
        # Free-form; anything orjson cannot encode natively becomes its str().
        return lambda e: orjson.dumps(getattr(e, field), default=str).decode()
    if column.type == ch.MONEY.type:
        return lambda e: money(getattr(e, field))
    if optional and not nullable:
        # `str | None` fields are plain String columns: None is stored as ''.
        return lambda e: getattr(e, field) or ""
    return lambda e: getattr(e, field)


def _event_table(
    name: str, model: type[Event], time_column: str, omit: frozenset[str] = frozenset()
) -> tuple[TableSpec, Callable[[Any], Row]]:
    declared = _declared(model, omit)
    readers = [_reader(field, column, _allows_none(model, field)) for field, _, column in declared]
    spec = _spec(
        name,
        [(column_name, column) for _, column_name, column in declared],
        time_column,
        sources=tuple((field, column.item) for field, _, column in declared),
    )

    def row(event: Any) -> Row:
        return tuple([read(event) for read in readers])

    return spec, row


def _allows_none(model: type[Event], field: str) -> bool:
    annotation = model.model_fields[field].annotation
    return type(None) in getattr(annotation, "__args__", ())


# control_records: the audit table of every control record (keys, ingest tokens, budgets,
# policies); the whole record is in `payload`, the rest are what its queries filter on.
_CONTROL_COLUMNS: list[tuple[str, Column]] = [
    ("event_id", ch.STRING),
    ("ts", ch.TS),
    ("source", ch.LOW),
    ("schema_version", ch.UINT16),
    ("record_type", ch.LOW),
    ("record_id", ch.STRING),
    ("subject", ch.STRING),
    ("org", ch.LOW),
    ("deleted", ch.BOOL),
    ("who", ch.STRING),
    ("payload", ch.STRING),
]
CONTROL_RECORDS = _spec("control_records", _CONTROL_COLUMNS, "ts")


def _control(
    e: Any, record_type: str, record_id: str, subject: str, org: str, deleted: bool
) -> Row:
    return (
        e.event_id,
        e.ts,
        e.source,
        e.schema_version,
        record_type,
        record_id,
        subject,
        org,
        deleted,
        e.created_by,
        e.model_dump_json(),
    )


def _key_row(e: KeyRecord) -> Row:
    return _control(e, "key", e.key_id, control_key("key", e.key_id), e.org, e.revoked)


def _ingest_token_row(e: IngestTokenRecord) -> Row:
    subject = control_key("ingest_token", e.token_id)
    return _control(e, "ingest_token", e.token_id, subject, e.org, e.revoked)


def _budget_row(e: BudgetRecord) -> Row:
    return _control(e, "budget", e.budget_id, e.subject, org_of(e.subject), e.deleted)


def _policy_row(e: Any) -> Row:
    return _control(e, "policy", e.policy_id, e.subject, org_of(e.subject), e.deleted)


def control_tombstone_row(event_id: str, ts: datetime, key: str) -> Row:
    """A tombstone on the compacted control topic, keyed `key:<id>`, `budget:<id>`..."""
    record_type, record_id = parse_control_key(key)
    return (event_id, ts, "meterline", 1, record_type, record_id, key, "", True, "", "")


_EVENT_TABLES = {
    RequestEvent: _event_table("requests", RequestEvent, "ts"),
    SpanEvent: _event_table("spans", SpanEvent, "start_ts"),
    GuardrailEvent: _event_table("guardrail_events", GuardrailEvent, "ts"),
    CostEvent: _event_table("costs", CostEvent, "request_ts"),
    BudgetState: _event_table("budget_states", BudgetState, "ts"),
    Anomaly: _event_table("anomalies", Anomaly, "ts"),
    DriftReport: _event_table("drift_reports", DriftReport, "ts"),
    # EnforcementDecision.source is the decision's origin (budget, manual, ...): it
    # replaces the envelope's `source`, and the table stores the decision's.
    EnforcementDecision: _event_table("enforcement_decisions", EnforcementDecision, "ts"),
    DeadLetter: _event_table("dead_letters", DeadLetter, "ts", frozenset({"schema_version"})),
}
DEAD_LETTERS = _EVENT_TABLES[DeadLetter][0]
_ENFORCEMENT = _EVENT_TABLES[EnforcementDecision][0]

_MAPPERS: dict[type[Event], tuple[str, Callable[[Any], Row]]] = {
    model: (spec.name, row) for model, (spec, row) in _EVENT_TABLES.items()
}
_MAPPERS[KeyRecord] = ("control_records", _key_row)
_MAPPERS[IngestTokenRecord] = ("control_records", _ingest_token_row)
_MAPPERS[BudgetRecord] = ("control_records", _budget_row)
_MAPPERS.update((policy, ("control_records", _policy_row)) for policy in POLICY_RECORD_MODELS)

TABLES: dict[str, TableSpec] = {
    spec.name: spec for spec in [*(s for s, _ in _EVENT_TABLES.values()), CONTROL_RECORDS]
}
TABLE_FOR_EVENT_TYPE: dict[str, str] = {
    model.model_fields["event_type"].default: table for model, (table, _) in _MAPPERS.items()
}


def enforcement_lift_row(event_id: str, ts: datetime, key: str, decided_by: str = "") -> Row:
    """A tombstone on the compacted enforcement topic (key `<source>|<subject>`): that
    source's decision on the subject is lifted; a key without a source lifts them all."""
    source, subject = parse_enforcement_key(key)
    values = {
        "event_id": event_id,
        "ts": ts,
        "schema_version": 1,
        "subject": subject,
        "action": LIFT,
        "reason": "tombstone",
        "source": source or "*",
        "rpm": None,
        "expires_at": None,
        "decided_at": ts,
        "anomaly_id": "",
        "decided_by": decided_by,
    }
    return tuple(values[name] for name in _ENFORCEMENT.column_names)


def row_for(event: Event) -> tuple[str, Row]:
    """The table an event belongs to and its row; RowMappingError if it cannot be stored."""
    try:
        table, mapper = _MAPPERS[type(event)]
    except KeyError:
        raise RowMappingError(f"no table for event type {event.event_type!r}") from None
    return table, mapper(event)


def utc_from_ms(ms: int | None) -> datetime:
    """A Kafka message timestamp (ms since epoch) as an aware UTC datetime."""
    if not ms or ms <= 0:
        return datetime.now(UTC)
    return datetime.fromtimestamp(ms / 1000, UTC)
