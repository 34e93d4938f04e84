from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from schemas.clickhouse.tables import (
    TABLE_FOR_EVENT_TYPE,
    TABLES,
    RowMappingError,
    control_tombstone_row,
    enforcement_lift_row,
    money,
    row_for,
)
from schemas.events.v1 import EVENT_MODELS, CostEvent

EXPECTED_TABLE = {
    "request": "requests",
    "span": "spans",
    "guardrail": "guardrail_events",
    "cost": "costs",
    "budget_state": "budget_states",
    "anomaly": "anomalies",
    "drift": "drift_reports",
    "enforcement": "enforcement_decisions",
    "key": "control_records",
    "ingest_token": "control_records",
    "budget": "control_records",
    "policy": "control_records",
    "dead_letter": "dead_letters",
}


def test_every_event_type_has_a_table() -> None:
    assert set(TABLE_FOR_EVENT_TYPE) == set(EVENT_MODELS)
    assert TABLE_FOR_EVENT_TYPE == EXPECTED_TABLE


@pytest.mark.parametrize("event_type", sorted(EXPECTED_TABLE))
def test_row_matches_columns_and_encodes_to_arrow(events, event_type: str) -> None:
    event = events[event_type]
    table, row = row_for(event)
    spec = TABLES[table]
    assert table == EXPECTED_TABLE[event_type]
    assert len(row) == len(spec.columns)
    named = dict(zip(spec.column_names, row, strict=True))
    assert named["event_id"] == event.event_id
    # Every row encodes with the table's Arrow schema (what the ClickHouse sink inserts).
    arrays = [
        pa.array([value], type=arrow_type)
        for value, (_, arrow_type) in zip(row, spec.columns, strict=True)
    ]
    assert pa.Table.from_arrays(arrays, schema=spec.schema).num_rows == 1


def test_request_row_flattens_nested_fields(events, now) -> None:
    _, row = row_for(events["request"])
    named = dict(zip(TABLES["requests"].column_names, row, strict=True))
    assert named["tool_call_names"] == ["search"]
    assert named["tool_call_argument_hashes"] == ["h1"]
    assert named["guardrail_actions"] == ["redact"]
    assert named["enforcement"] == {"rate_limit": "ok"}
    assert named["trace_id"] == ""  # None becomes an empty string, not a Nullable column
    assert named["ts_start"] == now


def test_cost_row_keeps_money_exact(events, now) -> None:
    _, row = row_for(events["cost"])
    named = dict(zip(TABLES["costs"].column_names, row, strict=True))
    assert named["total_cost"] == Decimal("0.00075")
    assert named["request_ts"] == now
    assert named["priced"] is True


def test_money_beyond_decimal_38_18_is_a_mapping_error(now) -> None:
    assert money(Decimal("1.0000000000000000001")) == Decimal("1.000000000000000000")
    with pytest.raises(RowMappingError):
        money(Decimal("1e25"))
    event = CostEvent(
        request_id="r", request_ts=now, price_source="x", priced=True, total_cost=Decimal("1e25")
    )
    with pytest.raises(RowMappingError):
        row_for(event)


def test_control_records_carry_type_subject_and_who(events) -> None:
    rows = {
        kind: dict(
            zip(TABLES["control_records"].column_names, row_for(events[kind])[1], strict=True)
        )
        for kind in ("key", "ingest_token", "budget", "policy")
    }
    assert rows["key"]["record_type"] == "key"
    assert rows["key"]["subject"] == "key:key-1"
    assert rows["key"]["who"] == "root"
    assert rows["ingest_token"]["record_type"] == "ingest_token"
    assert rows["ingest_token"]["subject"] == "ingest_token:itok_1"
    assert rows["ingest_token"]["org"] == "acme"
    assert "cd" * 32 in rows["ingest_token"]["payload"]  # the hash; never a secret
    assert rows["budget"]["org"] == "acme"
    assert rows["policy"]["record_id"] == "p1"
    assert '"mode":"enforce"' in rows["policy"]["payload"]


def test_tombstone_rows(now) -> None:
    lift = dict(
        zip(
            TABLES["enforcement_decisions"].column_names,
            enforcement_lift_row("id1", now, "key:k1"),
            strict=True,
        )
    )
    assert lift["action"] == "lift" and lift["subject"] == "key:k1"
    deleted = dict(
        zip(
            TABLES["control_records"].column_names,
            control_tombstone_row("id2", now, "budget:b7"),
            strict=True,
        )
    )
    assert deleted["record_type"] == "budget" and deleted["record_id"] == "b7"
    assert deleted["deleted"] is True
