"""Every event field is either stored (a Column next to it) or knowingly not stored."""

from __future__ import annotations

import pytest

from schemas.clickhouse.column import Column
from schemas.clickhouse.tables import TABLES, arrow_type
from schemas.events.v1 import (
    Anomaly,
    BudgetState,
    CostEvent,
    DeadLetter,
    DriftReport,
    EnforcementDecision,
    Event,
    GuardrailEvent,
    RequestEvent,
    SpanEvent,
)

# Fields kept off the tables on purpose; a new field must join a table or this list.
NOT_STORED = {
    "event_type",  # the table says it
    "prompt_signature",  # drift's input, not showback's
    "counted_through",  # budget watermark: the gateways' business, not history's
    "counted_through_request_id",
}
EVENT_TABLES: dict[type[Event], str] = {
    RequestEvent: "requests",
    SpanEvent: "spans",
    GuardrailEvent: "guardrail_events",
    CostEvent: "costs",
    BudgetState: "budget_states",
    Anomaly: "anomalies",
    DriftReport: "drift_reports",
    EnforcementDecision: "enforcement_decisions",
    DeadLetter: "dead_letters",
}


@pytest.mark.parametrize("model", list(EVENT_TABLES), ids=lambda m: m.__name__)
def test_every_field_is_stored_or_listed_as_not_stored(model: type[Event]) -> None:
    spec = TABLES[EVENT_TABLES[model]]
    read = {field for field, _ in spec.sources}
    unstored = set(model.model_fields) - read
    if model is DeadLetter:
        unstored.discard("schema_version")  # dead letters keep the original's bytes only
    assert unstored <= NOT_STORED, f"{model.__name__}: declare a Column for {unstored}"


def test_every_declared_type_has_an_arrow_type() -> None:
    for model in EVENT_TABLES:
        for info in model.model_fields.values():
            for column in info.metadata:
                if isinstance(column, Column):
                    assert arrow_type(column.type) is not None
