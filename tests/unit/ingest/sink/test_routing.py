from __future__ import annotations

import orjson
import pytest

from ingest.sink.routing import STAGE, Rejected, Routed, Router
from schemas.clickhouse.tables import TABLES
from schemas.enforcement import ACTOR_HEADER

PREFIX = "t1."
TOPIC_OF = {
    "request": "requests",
    "span": "spans",
    "guardrail": "guardrails",
    "cost": "costs",
    "budget_state": "budgets",
    "anomaly": "anomalies",
    "drift": "drift",
    "enforcement": "enforcement",
    "key": "control",
    "budget": "control",
    "policy": "control",
    "dead_letter": "dlq",
}


@pytest.fixture
def router() -> Router:
    return Router(PREFIX)


def test_subscribes_every_topic(router: Router) -> None:
    assert sorted(router.topics) == sorted(f"{PREFIX}{name}" for name in set(TOPIC_OF.values()))


@pytest.mark.parametrize("event_type", sorted(TOPIC_OF))
def test_valid_events_route_to_their_table(router: Router, events, event_type: str) -> None:
    event = events[event_type]
    result = router.route(PREFIX + TOPIC_OF[event_type], 0, 7, b"k", event.to_json(), 1)
    assert isinstance(result, Routed), result
    assert result.row[0] == event.event_id


def test_garbage_is_rejected_with_reason(router: Router) -> None:
    result = router.route(PREFIX + "requests", 1, 42, b"key-1", b"\xffnot json", 1_700_000_000_000)
    assert isinstance(result, Rejected)
    dead = result.dead_letter
    assert dead.stage == STAGE
    assert dead.original_topic == PREFIX + "requests"
    assert (dead.original_partition, dead.original_offset, dead.original_key) == (1, 42, "key-1")
    assert "Invalid JSON" in dead.error
    assert result.publish is True
    # The same bad message always yields the same dead letter (replays stay idempotent).
    again = router.route(PREFIX + "requests", 1, 42, b"key-1", b"\xffnot json", 1_700_000_000_000)
    assert isinstance(again, Rejected)
    assert again.dead_letter.event_id == dead.event_id and again.dead_letter.ts == dead.ts


def test_missing_field_names_the_field(router: Router, events) -> None:
    data = orjson.loads(events["cost"].to_json())
    del data["price_source"]
    result = router.route(PREFIX + "costs", 0, 1, None, orjson.dumps(data), 1)
    assert isinstance(result, Rejected)
    assert "price_source" in result.dead_letter.error


def test_wrong_event_type_on_a_topic_is_rejected(router: Router, events) -> None:
    result = router.route(PREFIX + "costs", 0, 1, None, events["request"].to_json(), 1)
    assert isinstance(result, Rejected)


def test_newer_schema_version_keeps_known_fields(router: Router, events) -> None:
    data = orjson.loads(events["request"].to_json())
    data["schema_version"] = 2
    data["a_field_from_the_future"] = {"x": 1}
    result = router.route(PREFIX + "requests", 0, 1, None, orjson.dumps(data), 1)
    assert isinstance(result, Routed)
    named = dict(zip(TABLES["requests"].column_names, result.row, strict=True))
    assert named["schema_version"] == 2 and named["org"] == "acme"


def test_control_topic_dispatches_on_event_type(router: Router) -> None:
    bad = orjson.dumps({"event_type": "request"})
    result = router.route(PREFIX + "control", 0, 1, b"key:k", bad, 1)
    assert isinstance(result, Rejected) and "event_type" in result.dead_letter.error


def test_tombstones(router: Router) -> None:
    lift = router.route(PREFIX + "enforcement", 0, 3, b"key:k1", None, 1)
    assert isinstance(lift, Routed) and lift.table == "enforcement_decisions"
    deleted = router.route(PREFIX + "control", 0, 3, b"policy:p1", None, 1)
    assert isinstance(deleted, Routed) and deleted.table == "control_records"
    empty = router.route(PREFIX + "costs", 0, 3, b"k", None, 1)
    assert isinstance(empty, Rejected)


def test_a_lift_names_who_lifted_it_from_the_actor_header(router: Router) -> None:
    columns = TABLES["enforcement_decisions"].column_names
    headers = [("other", b"x"), (ACTOR_HEADER, b"admin:dave")]
    lift = router.route(PREFIX + "enforcement", 0, 4, b"manual|key:k1", None, 1, headers)
    assert isinstance(lift, Routed)
    assert dict(zip(columns, lift.row, strict=True))["decided_by"] == "admin:dave"
    anonymous = router.route(PREFIX + "enforcement", 0, 5, b"manual|key:k1", None, 1)
    assert isinstance(anonymous, Routed)
    assert dict(zip(columns, anonymous.row, strict=True))["decided_by"] == ""


def test_bad_dead_letters_are_stored_not_republished(router: Router) -> None:
    result = router.route(PREFIX + "dlq", 0, 1, None, b"raw bytes", 1)
    assert isinstance(result, Rejected) and result.publish is False


def test_unknown_topic_is_rejected(router: Router) -> None:
    assert isinstance(router.route("other.topic", 0, 1, None, b"{}", 1), Rejected)
