from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from meterline.cli import main
from schemas.events import EVENT_MODELS, CostEvent, RequestEvent, format_ts
from schemas.ids import deterministic_id, hash_key, new_event_id


def _request(**overrides: object) -> RequestEvent:
    values: dict[str, object] = {
        "request_id": "req-1",
        "ts_start": datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        "ts_end": datetime(2026, 11, 25, 12, 0, 1, 250_000, tzinfo=UTC),
        "latency_ms": 1250.0,
        "endpoint": "/v1/chat/completions",
        "status_code": 200,
    }
    values.update(overrides)
    return RequestEvent(**values)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field() -> None:
    event = _request(input_tokens=10, tool_calls=[{"name": "search", "arguments_hash": "ab"}])
    assert RequestEvent.model_validate_json(event.to_json()) == event


def test_envelope_is_on_the_wire() -> None:
    data = orjson.loads(_request().to_json())
    assert data["event_type"] == "request"
    assert data["schema_version"] == 1
    assert data["ts"].endswith("Z") and len(data["ts"]) == len("2026-11-25T12:00:00.000Z")


def test_consumer_ignores_unknown_fields_and_newer_versions() -> None:
    data = orjson.loads(_request().to_json())
    data["schema_version"] = 7
    data["field_from_the_future"] = {"x": 1}
    event = RequestEvent.model_validate(data)
    assert event.schema_version == 7 and event.request_id == "req-1"


def test_money_is_exact_and_never_in_exponent_form() -> None:
    cost = CostEvent(
        request_id="r",
        request_ts=datetime.now(UTC),
        total_cost=Decimal("0.000000075"),
        price_source="genai-prices@0.2.3",
        priced=True,
    )
    wire = orjson.loads(cost.to_json())
    assert wire["total_cost"] == "0.000000075"
    assert CostEvent.model_validate(wire).total_cost == Decimal("0.000000075")


def test_missing_required_field_is_named() -> None:
    with pytest.raises(ValidationError, match="status_code"):
        RequestEvent.model_validate({"request_id": "x", "endpoint": "/v1/models"})


def test_naive_timestamps_are_utc() -> None:
    event = _request(ts_start=datetime(2026, 1, 1, 0, 0))
    assert event.ts_start.tzinfo is not None
    assert format_ts(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000Z"


def test_ids() -> None:
    first, second = new_event_id(), new_event_id()
    assert first != second and first < second  # time-ordered
    assert deterministic_id("a", "b") == deterministic_id("a", "b") != deterministic_id("ab")
    assert hash_key("sk-secret") != "sk-secret" and len(hash_key("sk-secret")) == 64


def test_schemas_export_writes_one_schema_per_model(tmp_path: Path, capsys) -> None:
    assert main(["schemas", "export", str(tmp_path)]) == 0
    files = sorted(tmp_path.glob("*.schema.json"))
    assert len(files) == len(EVENT_MODELS)
    request_schema = json.loads((tmp_path / "request.v1.schema.json").read_text())
    assert "key_id" in request_schema["properties"]
    assert "status_code" in request_schema["required"]
