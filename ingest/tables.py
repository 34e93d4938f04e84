"""Every ClickHouse table the sink writes, and how an event becomes one of its rows.

This is the one place that knows both the event models (schemas/events) and the DDL
(schemas/clickhouse/migrations): a column added to a migration is added here too, and
`tests/unit/ingest/test_tables.py` checks each event type against its column list.
Rows are tuples in column order, so the ClickHouse sink can transpose a batch straight
into Arrow columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

import orjson
import pyarrow as pa

from schemas.enforcement import LIFT
from schemas.events.v1 import (
    AgentLoopPolicyRecord,
    Anomaly,
    BudgetRecord,
    BudgetState,
    CachePolicyRecord,
    CostEvent,
    DeadLetter,
    DriftReport,
    EnforcementDecision,
    Event,
    GuardrailEvent,
    GuardrailPolicyRecord,
    IngestTokenRecord,
    KeyRecord,
    LlmjackingPolicyRecord,
    PolicyRecord,
    RequestEvent,
    SpanEvent,
)
from schemas.subjects import org_of
from schemas.topics import control_key, parse_control_key, parse_enforcement_key

__all__ = [
    "REQUEST_FLATTENED",
    "TABLES",
    "TABLE_FOR_EVENT_TYPE",
    "Row",
    "RowMappingError",
    "TableSpec",
    "control_tombstone_row",
    "enforcement_lift_row",
    "row_for",
]

Row = tuple[Any, ...]

STR = pa.string()
TS = pa.timestamp("ms", tz="UTC")
I32 = pa.int32()
I64 = pa.int64()
U16 = pa.uint16()
F64 = pa.float64()
BOOL = pa.bool_()
MONEY = pa.decimal128(38, 18)
STRS = pa.list_(pa.string())
STR_MAP = pa.map_(pa.string(), pa.string())

_MONEY_QUANTUM = Decimal("1e-18")
_MONEY_CONTEXT = Context(prec=38)  # Decimal(38, 18): 20 integer digits, 18 fractional


class RowMappingError(ValueError):
    """The event is valid but cannot be stored (e.g. money beyond Decimal(38, 18))."""


def money(value: Decimal) -> Decimal:
    """Exact at 18 decimals; anything finer is rounded half-even (< 1e-18 USD)."""
    try:
        result = value.quantize(_MONEY_QUANTUM, context=_MONEY_CONTEXT)
    except ArithmeticError as exc:
        raise RowMappingError(f"amount {value} does not fit Decimal(38, 18)") from exc
    return result


def _s(value: str | None) -> str:
    return value or ""


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, pa.DataType], ...]
    # The column whose range bounds the "already stored?" lookup; it is the partition
    # column, fixed for an event, so a replay lands in the same range.
    time_column: str

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(list(self.columns))

    def index_of(self, column: str) -> int:
        return self.column_names.index(column)


_ENVELOPE = (("event_id", STR), ("ts", TS), ("source", STR), ("schema_version", U16))


def _envelope(event: Event) -> Row:
    return (event.event_id, event.ts, event.source, event.schema_version)


REQUESTS = TableSpec(
    "requests",
    (
        *_ENVELOPE,
        ("request_id", STR),
        ("ts_start", TS),
        ("ts_end", TS),
        ("latency_ms", F64),
        ("ttft_ms", F64),
        ("key_id", STR),
        ("org", STR),
        ("team", STR),
        ("project", STR),
        ("user", STR),
        ("session_id", STR),
        ("trace_id", STR),
        ("app", STR),
        ("client_ip", STR),
        ("user_agent", STR),
        ("provider", STR),
        ("model_requested", STR),
        ("model_used", STR),
        ("endpoint", STR),
        ("stream", BOOL),
        ("status_code", I32),
        ("error_type", STR),
        ("input_tokens", I64),
        ("output_tokens", I64),
        ("cache_read_tokens", I64),
        ("cache_write_tokens", I64),
        ("reasoning_tokens", I64),
        ("max_tokens_requested", I64),
        ("prompt_hash", STR),
        ("prompt_chars", I64),
        ("response_chars", I64),
        ("tool_call_names", STRS),
        ("tool_call_argument_hashes", STRS),
        ("finish_reason", STR),
        ("enforcement", STR_MAP),
        ("guardrail_names", STRS),
        ("guardrail_stages", STRS),
        ("guardrail_actions", STRS),
        ("guardrail_categories", STRS),
    ),
    time_column="ts",
)


# Columns that flatten a list of sub-models, and that list (for the fast path, ingest.columns).
REQUEST_FLATTENED = {
    "tool_call_names": "tool_calls",
    "tool_call_argument_hashes": "tool_calls",
    "guardrail_names": "guardrails",
    "guardrail_stages": "guardrails",
    "guardrail_actions": "guardrails",
    "guardrail_categories": "guardrails",
}


def _request_row(e: RequestEvent) -> Row:
    return (
        *_envelope(e),
        e.request_id,
        e.ts_start,
        e.ts_end,
        e.latency_ms,
        e.ttft_ms,
        _s(e.key_id),
        e.org,
        e.team,
        e.project,
        e.user,
        _s(e.session_id),
        _s(e.trace_id),
        _s(e.app),
        _s(e.client_ip),
        _s(e.user_agent),
        _s(e.provider),
        _s(e.model_requested),
        _s(e.model_used),
        e.endpoint,
        e.stream,
        e.status_code,
        _s(e.error_type),
        e.input_tokens,
        e.output_tokens,
        e.cache_read_tokens,
        e.cache_write_tokens,
        e.reasoning_tokens,
        e.max_tokens_requested,
        _s(e.prompt_hash),
        e.prompt_chars,
        e.response_chars,
        [call.name for call in e.tool_calls],
        [call.arguments_hash for call in e.tool_calls],
        _s(e.finish_reason),
        e.enforcement,
        [g.guardrail for g in e.guardrails],
        [g.stage for g in e.guardrails],
        [g.action for g in e.guardrails],
        [g.category for g in e.guardrails],
    )


SPANS = TableSpec(
    "spans",
    (
        *_ENVELOPE,
        ("trace_id", STR),
        ("span_id", STR),
        ("parent_span_id", STR),
        ("name", STR),
        ("kind", STR),
        ("start_ts", TS),
        ("end_ts", TS),
        ("duration_ms", F64),
        ("status", STR),
        ("service_name", STR),
        ("key_id", STR),
        ("org", STR),
        ("team", STR),
        ("project", STR),
        ("user", STR),
        ("session_id", STR),
        ("provider", STR),
        ("model", STR),
        ("operation", STR),
        ("input_tokens", I64),
        ("output_tokens", I64),
        ("cache_read_tokens", I64),
        ("cache_write_tokens", I64),
        ("tool_name", STR),
        ("tool_arguments_hash", STR),
        ("finish_reasons", STRS),
        ("attributes", STR_MAP),
    ),
    time_column="start_ts",
)


def _span_row(e: SpanEvent) -> Row:
    return (
        *_envelope(e),
        e.trace_id,
        e.span_id,
        _s(e.parent_span_id),
        e.name,
        e.kind,
        e.start_ts,
        e.end_ts,
        e.duration_ms,
        e.status,
        _s(e.service_name),
        _s(e.key_id),
        e.org,
        e.team,
        e.project,
        _s(e.user),
        _s(e.session_id),
        _s(e.provider),
        _s(e.model),
        _s(e.operation),
        e.input_tokens,
        e.output_tokens,
        e.cache_read_tokens,
        e.cache_write_tokens,
        _s(e.tool_name),
        _s(e.tool_arguments_hash),
        list(e.finish_reasons),
        e.attributes,
    )


GUARDRAIL_EVENTS = TableSpec(
    "guardrail_events",
    (
        *_ENVELOPE,
        ("request_id", STR),
        ("key_id", STR),
        ("org", STR),
        ("team", STR),
        ("project", STR),
        ("guardrail", STR),
        ("stage", STR),
        ("action", STR),
        ("category", STR),
        ("confidence", F64),
        ("excerpt", STR),
    ),
    time_column="ts",
)


def _guardrail_row(e: GuardrailEvent) -> Row:
    return (
        *_envelope(e),
        e.request_id,
        _s(e.key_id),
        e.org,
        e.team,
        e.project,
        e.guardrail,
        e.stage,
        e.action,
        e.category,
        e.confidence,
        e.excerpt,
    )


COSTS = TableSpec(
    "costs",
    (
        *_ENVELOPE,
        ("request_id", STR),
        ("source_type", STR),
        ("request_ts", TS),
        ("key_id", STR),
        ("org", STR),
        ("team", STR),
        ("project", STR),
        ("user", STR),
        ("session_id", STR),
        ("provider", STR),
        ("model", STR),
        ("input_tokens", I64),
        ("output_tokens", I64),
        ("cache_read_tokens", I64),
        ("cache_write_tokens", I64),
        ("input_cost", MONEY),
        ("output_cost", MONEY),
        ("cache_read_cost", MONEY),
        ("cache_write_cost", MONEY),
        ("total_cost", MONEY),
        ("currency", STR),
        ("price_source", STR),
        ("priced", BOOL),
    ),
    time_column="request_ts",
)


def _cost_row(e: CostEvent) -> Row:
    return (
        *_envelope(e),
        e.request_id,
        e.source_type,
        e.request_ts,
        _s(e.key_id),
        e.org,
        e.team,
        e.project,
        e.user,
        _s(e.session_id),
        _s(e.provider),
        _s(e.model),
        e.input_tokens,
        e.output_tokens,
        e.cache_read_tokens,
        e.cache_write_tokens,
        money(e.input_cost),
        money(e.output_cost),
        money(e.cache_read_cost),
        money(e.cache_write_cost),
        money(e.total_cost),
        e.currency,
        e.price_source,
        e.priced,
    )


BUDGET_STATES = TableSpec(
    "budget_states",
    (
        *_ENVELOPE,
        ("budget_id", STR),
        ("subject", STR),
        ("period", STR),
        ("period_start", TS),
        ("period_end", TS),
        ("spent_usd", MONEY),
        ("limit_usd", MONEY),
        ("percent_used", F64),
        ("burn_rate_usd_per_hour", MONEY),
        ("projected_exhaustion", TS),
        ("status", STR),
    ),
    time_column="ts",
)


def _budget_state_row(e: BudgetState) -> Row:
    return (
        *_envelope(e),
        e.budget_id,
        e.subject,
        e.period,
        e.period_start,
        e.period_end,
        money(e.spent_usd),
        money(e.limit_usd),
        e.percent_used,
        money(e.burn_rate_usd_per_hour),
        e.projected_exhaustion,
        e.status,
    )


ANOMALIES = TableSpec(
    "anomalies",
    (
        *_ENVELOPE,
        ("anomaly_id", STR),
        ("kind", STR),
        ("subject", STR),
        ("score", F64),
        ("severity", STR),
        ("signals", STRS),
        ("evidence", STR),
        ("recommended_action", STR),
    ),
    time_column="ts",
)


def _json_text(value: Any) -> str:
    # Evidence is free-form; anything orjson cannot encode natively becomes its str().
    return orjson.dumps(value, default=str).decode()


def _anomaly_row(e: Anomaly) -> Row:
    return (
        *_envelope(e),
        e.anomaly_id,
        e.kind,
        e.subject,
        e.score,
        e.severity,
        list(e.signals),
        _json_text(e.evidence),
        e.recommended_action,
    )


DRIFT_REPORTS = TableSpec(
    "drift_reports",
    (
        *_ENVELOPE,
        ("scope", STR),
        ("metric", STR),
        ("statistic", STR),
        ("value", F64),
        ("threshold", F64),
        ("drifted", BOOL),
        ("window_start", TS),
        ("window_end", TS),
        ("reference_start", TS),
        ("reference_end", TS),
    ),
    time_column="ts",
)


def _drift_row(e: DriftReport) -> Row:
    return (
        *_envelope(e),
        e.scope,
        e.metric,
        e.statistic,
        e.value,
        e.threshold,
        e.drifted,
        e.window_start,
        e.window_end,
        e.reference_start,
        e.reference_end,
    )


# EnforcementDecision.source is the decision's origin (budget, manual, ...), which shadows
# the envelope's `source`; the table stores the decision's.
ENFORCEMENT_DECISIONS = TableSpec(
    "enforcement_decisions",
    (
        ("event_id", STR),
        ("ts", TS),
        ("schema_version", U16),
        ("subject", STR),
        ("action", STR),
        ("reason", STR),
        ("source", STR),
        ("rpm", I64),
        ("expires_at", TS),
        ("decided_at", TS),
        ("anomaly_id", STR),
        ("decided_by", STR),
    ),
    time_column="ts",
)


def _enforcement_row(e: EnforcementDecision) -> Row:
    return (
        e.event_id,
        e.ts,
        e.schema_version,
        e.subject,
        e.action,
        e.reason,
        e.source,
        e.rpm,
        e.expires_at,
        e.decided_at,
        _s(e.anomaly_id),
        _s(e.decided_by),
    )


def enforcement_lift_row(event_id: str, ts: datetime, key: str) -> Row:
    """A tombstone on the compacted enforcement topic (key `<source>|<subject>`): that
    source's decision on the subject is lifted; a key without a source lifts them all."""
    source, subject = parse_enforcement_key(key)
    return (event_id, ts, 1, subject, LIFT, "tombstone", source or "*", None, None, ts, "", "")


CONTROL_RECORDS = TableSpec(
    "control_records",
    (
        *_ENVELOPE,
        ("record_type", STR),
        ("record_id", STR),
        ("subject", STR),
        ("org", STR),
        ("deleted", BOOL),
        ("who", STR),
        ("payload", STR),
    ),
    time_column="ts",
)


def _key_record_row(e: KeyRecord) -> Row:
    return (
        *_envelope(e),
        "key",
        e.key_id,
        control_key("key", e.key_id),
        e.org,
        e.revoked,
        e.created_by,
        e.model_dump_json(),
    )


def _ingest_token_row(e: IngestTokenRecord) -> Row:
    return (
        *_envelope(e),
        "ingest_token",
        e.token_id,
        control_key("ingest_token", e.token_id),
        e.org,
        e.revoked,
        e.created_by,
        e.model_dump_json(),
    )


def _budget_record_row(e: BudgetRecord) -> Row:
    return (
        *_envelope(e),
        "budget",
        e.budget_id,
        e.subject,
        org_of(e.subject),
        e.deleted,
        e.created_by,
        e.model_dump_json(),
    )


def _policy_record_row(e: PolicyRecord) -> Row:
    return (
        *_envelope(e),
        "policy",
        e.policy_id,
        e.subject,
        org_of(e.subject),
        e.deleted,
        e.created_by,
        e.model_dump_json(),
    )


def control_tombstone_row(event_id: str, ts: datetime, key: str) -> Row:
    """A tombstone on the compacted control topic, keyed `key:<id>`, `budget:<id>`..."""
    record_type, record_id = parse_control_key(key)
    return (event_id, ts, "meterline", 1, record_type, record_id, key, "", True, "", "")


DEAD_LETTERS = TableSpec(
    "dead_letters",
    (
        ("event_id", STR),
        ("ts", TS),
        ("source", STR),
        ("original_topic", STR),
        ("original_partition", I32),
        ("original_offset", I64),
        ("original_key", STR),
        ("error", STR),
        ("stage", STR),
        ("payload", STR),
    ),
    time_column="ts",
)


def _dead_letter_row(e: DeadLetter) -> Row:
    return (
        e.event_id,
        e.ts,
        e.source,
        e.original_topic,
        e.original_partition,
        e.original_offset,
        _s(e.original_key),
        e.error,
        e.stage,
        e.payload,
    )


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        REQUESTS,
        SPANS,
        GUARDRAIL_EVENTS,
        COSTS,
        BUDGET_STATES,
        ANOMALIES,
        DRIFT_REPORTS,
        ENFORCEMENT_DECISIONS,
        CONTROL_RECORDS,
        DEAD_LETTERS,
    )
}

_MAPPERS: dict[type[Event], tuple[str, Callable[[Any], Row]]] = {
    RequestEvent: ("requests", _request_row),
    SpanEvent: ("spans", _span_row),
    GuardrailEvent: ("guardrail_events", _guardrail_row),
    CostEvent: ("costs", _cost_row),
    BudgetState: ("budget_states", _budget_state_row),
    Anomaly: ("anomalies", _anomaly_row),
    DriftReport: ("drift_reports", _drift_row),
    EnforcementDecision: ("enforcement_decisions", _enforcement_row),
    KeyRecord: ("control_records", _key_record_row),
    IngestTokenRecord: ("control_records", _ingest_token_row),
    BudgetRecord: ("control_records", _budget_record_row),
    GuardrailPolicyRecord: ("control_records", _policy_record_row),
    LlmjackingPolicyRecord: ("control_records", _policy_record_row),
    AgentLoopPolicyRecord: ("control_records", _policy_record_row),
    CachePolicyRecord: ("control_records", _policy_record_row),
    DeadLetter: ("dead_letters", _dead_letter_row),
}

TABLE_FOR_EVENT_TYPE: dict[str, str] = {
    model.model_fields["event_type"].default: table for model, (table, _) in _MAPPERS.items()
}


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
