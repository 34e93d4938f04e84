"""The columnar fast path stores exactly what the pydantic path stores, and nothing more."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pyarrow as pa
import pytest

from ingest.sink.routing import Decoded, Record, Rejected, Routed, Router
from schemas.clickhouse.tables import TABLES, row_for
from schemas.events.v1 import Event, RequestEvent

PREFIX = "c1."
FAST_TOPICS = {
    "request": "requests",
    "span": "spans",
    "guardrail": "guardrails",
    "cost": "costs",
    "budget_state": "budgets",
    "drift": "drift",
    "enforcement": "enforcement",
    "dead_letter": "dlq",
}


@pytest.fixture
def router() -> Router:
    return Router(PREFIX)


def outcome(results: list[Decoded | Routed | Rejected]) -> tuple[list[dict], list[str]]:
    """(stored rows, dead-letter errors), each sorted, whatever path produced them."""
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for result in results:
        if isinstance(result, Decoded):
            rows.extend(result.columns.to_pylist())
        elif isinstance(result, Routed):
            spec = TABLES[result.table]
            try:
                arrays = [
                    pa.array([value], arrow_type)
                    for value, (_, arrow_type) in zip(result.row, spec.columns, strict=True)
                ]
            except (pa.ArrowException, OverflowError):  # the sink dead-letters it on write
                errors.append("cannot encode")
                continue
            rows.extend(pa.Table.from_arrays(arrays, schema=spec.schema).to_pylist())
        else:
            errors.append(result.dead_letter.error)
    return sorted(rows, key=repr), sorted(errors)


def records(topic: str, values: list[bytes]) -> list[Record]:
    return [
        Record(PREFIX + topic, 0, offset, b"k", value, 1) for offset, value in enumerate(values)
    ]


def assert_same_as_pydantic(router: Router, batch: list[Record]) -> None:
    fast = router.route_many(batch)
    slow = [router.route(*record) for record in batch]
    assert outcome(fast) == outcome(slow)


def test_hot_topics_have_a_fast_path(router: Router) -> None:
    assert {topic.removeprefix(PREFIX) for topic in router._decoders} == set(FAST_TOPICS.values())


@pytest.mark.parametrize("event_type", sorted(FAST_TOPICS))
def test_fast_path_rows_equal_pydantic_rows(router: Router, events, event_type: str) -> None:
    event: Event = events[event_type]
    if isinstance(event, RequestEvent):  # lists of sub-models take the slow path
        event = event.model_copy(update={"tool_calls": [], "guardrails": []})
    batch = records(FAST_TOPICS[event_type], [event.to_json()] * 3)
    fast = router.route_many(batch)
    assert [type(result) for result in fast] == [Decoded]
    assert fast[0].table == row_for(event)[0]
    assert_same_as_pydantic(router, batch)


def test_sub_models_take_the_slow_path(router: Router, events) -> None:
    event = events["request"]
    plain = event.model_copy(update={"tool_calls": [], "guardrails": [], "event_id": "plain"})
    batch = records("requests", [plain.to_json(), event.to_json()])
    fast = router.route_many(batch)
    assert sorted(type(result).__name__ for result in fast) == ["Decoded", "Routed"]
    assert_same_as_pydantic(router, batch)


# Each mutation of a valid cost event: pydantic coerces, rejects or accepts it; the fast
# path must end the same way (usually by handing the event to pydantic).
MUTATIONS: list[dict[str, Any]] = [
    {"input_tokens": 1.5},
    {"input_tokens": 2.0},
    {"input_tokens": True},
    {"input_tokens": "5"},
    {"input_tokens": 2**70},
    {"org": None},
    {"org": 5},
    {"key_id": None},
    {"priced": 1},
    {"priced": "yes"},
    {"total_cost": 0.5},
    {"total_cost": "1e-3"},
    {"total_cost": "1.0000000000000000001"},
    {"total_cost": "1" + "0" * 25},
    {"total_cost": "NaN"},
    {"request_ts": "2026-01-01T00:00:00"},
    {"request_ts": "2026-01-01T02:00:00.5+02:00"},
    {"request_ts": "2026-02-30T00:00:00Z"},
    {"request_ts": "2026-01-01T00:00:00.123456Z"},
    {"request_ts": 1_700_000_000},
    {"currency": "EUR"},
    {"source_type": None},
    {"schema_version": 0},
    {"schema_version": 7, "from_the_future": {"x": [1]}},
    {"event_type": "request"},
    {"event_id": None},
    {"price_source": None},
]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=repr)
def test_mutated_events_end_as_with_pydantic(router: Router, events, mutation) -> None:
    data = orjson.loads(events["cost"].to_json())
    data.update(mutation)
    mutated = json.dumps(data).encode()  # orjson refuses ints beyond 64 bits
    good = [events["cost"].model_copy(update={"event_id": f"good-{i}"}).to_json() for i in range(2)]
    assert_same_as_pydantic(router, records("costs", [good[0], mutated, good[1]]))


@pytest.mark.parametrize("missing", ["price_source", "org", "total_cost", "schema_version"])
def test_missing_fields_end_as_with_pydantic(router: Router, events, missing: str) -> None:
    data = orjson.loads(events["cost"].to_json())
    del data[missing]
    assert_same_as_pydantic(
        router, records("costs", [events["cost"].to_json(), orjson.dumps(data)])
    )


@pytest.mark.parametrize("missing", ["event_id", "ts"])
def test_fields_with_a_default_factory_take_the_slow_path(
    router: Router, events, missing: str
) -> None:
    data = orjson.loads(events["cost"].to_json())
    del data[missing]
    results = router.route_many(records("costs", [events["cost"].to_json(), orjson.dumps(data)]))
    assert sorted(type(result).__name__ for result in results) == ["Decoded", "Routed"]


@pytest.mark.parametrize(
    "mutation",
    [{"enforcement": {"a": 1}}, {"enforcement": {"a": None}}, {"enforcement": [["a", "b"]]}],
    ids=repr,
)
def test_maps_and_lists_end_as_with_pydantic(router: Router, events, mutation) -> None:
    event = events["request"].model_copy(update={"tool_calls": [], "guardrails": []})
    data = orjson.loads(event.to_json())
    data.update(mutation)
    assert_same_as_pydantic(router, records("requests", [event.to_json(), orjson.dumps(data)]))


def test_span_lists_end_as_with_pydantic(router: Router, events) -> None:
    values = [events["span"].to_json()]
    for finish_reasons in ("stop", ["stop", None], [1]):
        data = orjson.loads(events["span"].to_json())
        data["finish_reasons"] = finish_reasons
        values.append(orjson.dumps(data))
    assert_same_as_pydantic(router, records("spans", values))


def test_garbage_in_a_batch_is_dead_lettered_with_pydantic_message(router: Router, events) -> None:
    batch = records("costs", [events["cost"].to_json(), b"\xffnot json", b"[1]", None])
    fast = router.route_many(batch)
    _, errors = outcome(fast)
    assert len(errors) == 3 and any("Invalid JSON" in error for error in errors)
    assert_same_as_pydantic(router, batch)


def raw_variants(event_json: bytes) -> list[bytes]:
    """Byte-level variants a dict mutation cannot express (msgspec parses the bytes)."""
    body = event_json[1:-1]
    pretty = json.dumps(orjson.loads(event_json), indent=2).encode()
    return [
        b'{"org":"first",' + body + b"}",  # duplicate key: the last one wins
        b"{" + body + b',"org":"last"}',
        b"{" + body + b',"org":"\\ud800"}',  # lone surrogate escape
        b"{" + body + b',"org":"caf\\u00e9 \\"q\\""}',
        b"{" + body + b',"org":"caf\xc3\xa9"}',
        b"{" + body + b',"org":"\xff"}',  # invalid UTF-8
        b"{" + body + b',"org":"a\x01b"}',  # raw control character
        pretty,  # whitespace and newlines
        b"  " + event_json + b"\n",
        event_json + b" x",  # trailing garbage
        b"{" + body + b',"input_tokens":-1}',
        b"{" + body + b',"input_tokens":1e2}',
        b"{" + body + b',"input_tokens":18446744073709551616}',
        b"{" + body + b',"nested":{"deep":[1,{"x":null}]}}',
        b"{" + body + b',"total_cost":"-0.5"}',
        b"{" + body + b',"total_cost":"00012.50"}',
        b"{" + body + b',"request_ts":"2026-01-01T00:00:00.000-23:59"}',
        b"{" + body + b',"request_ts":"9999-12-31T23:59:59.999Z"}',
        b"{" + body + b',"request_ts":"0001-01-01T00:00:00Z"}',
        b"{" + body + b',"currency":null}',
        b"{" + body + b',"schema_version":70000}',
        b"[" + event_json + b"]",
        b"null",
        b"",
    ]


@pytest.mark.parametrize("index", range(24))
def test_raw_variants_end_as_with_pydantic(router: Router, events, index: int) -> None:
    variant = raw_variants(events["cost"].to_json())[index]
    good = [events["cost"].model_copy(update={"event_id": f"good-{i}"}).to_json() for i in range(2)]
    assert_same_as_pydantic(router, records("costs", [good[0], variant, good[1]]))


@pytest.mark.parametrize(
    "mutation",
    [
        {"latency_ms": 420},
        {"latency_ms": 1e308},
        {"latency_ms": "1.5"},
        {"ttft_ms": None},
        {"stream": 0},
        {"attempts": None},
        {"attempts": [{}]},
        {"tool_calls": {}},
        {"enforcement": None},
        {"status_code": 2**31},
    ],
    ids=repr,
)
def test_request_mutations_end_as_with_pydantic(router: Router, events, mutation) -> None:
    event = events["request"].model_copy(update={"tool_calls": [], "guardrails": []})
    data = orjson.loads(event.to_json())
    data.update(mutation)
    assert_same_as_pydantic(router, records("requests", [event.to_json(), orjson.dumps(data)]))
