"""Budgets with 2 processors workers in one consumer group (issue 13): the same results as 1.

Two real workers (`python -m processors`) share 4 partitions of the real tansu broker. The
costs of one org's 8 keys land on every partition; the budgets stage fans each out per
budget subject, so one worker owns each subject. The read API the workers reconcile from
on a partition move is a stand-in warehouse that holds every cost the test produced (as
a caught-up sink would): it answers `GET /api/spend` like ingest does.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from meterline.settings import Settings
from schemas.budget_spend import spend_partition
from schemas.events.v1 import BudgetRecord, BudgetState, CostEvent, EnforcementDecision
from schemas.subjects import attribution_subjects
from schemas.topics import BUDGETS, CONTROL, COSTS, ENFORCEMENT
from tests.conftest import free_port
from tests.integration.processors.worker_helpers import (
    Record,
    TopicReader,
    produce,
    worker_process,
)

pytestmark = pytest.mark.integration

PARTITIONS = 4
KEYS = [f"k{index}" for index in range(8)]
PRICE = Decimal("0.05")
ORG_LIMIT = Decimal("1")


class Warehouse:
    """The costs stored so far, answering `/api/spend` as ingest does: with `recent_from`,
    the sum of a subject's costs in [from, recent_from) and each one in [recent_from, to)."""

    def __init__(self) -> None:
        self._costs: list[CostEvent] = []
        self._lock = threading.Lock()

    def store(self, costs: list[CostEvent]) -> None:
        with self._lock:
            self._costs.extend(costs)

    def spend(
        self, subject: str, start: datetime, end: datetime, recent_from: datetime
    ) -> dict[str, Any]:
        with self._lock:
            costs = list(self._costs)
        cut = min(max(recent_from, start), end)
        mine = [
            c
            for c in costs
            if start <= c.request_ts < end
            and subject in attribution_subjects(c.key_id, c.org, c.team, c.project, c.user)
        ]
        before = [c for c in mine if c.request_ts < cut]
        return {
            "subject": subject,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "cost_usd": format(sum((c.total_cost for c in before), Decimal(0)), "f"),
            "requests": len(before),
            "as_of": cut.isoformat(),
            "recent": [
                {
                    "event_id": c.event_id,
                    "request_ts": c.request_ts.isoformat(),
                    "cost_usd": format(c.total_cost, "f"),
                }
                for c in mine
                if c.request_ts >= cut
            ],
        }


@contextmanager
def read_api(warehouse: Warehouse) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {name: values[0] for name, values in parse_qs(url.query).items()}
            if url.path != "/api/spend":
                self.send_error(404)
                return
            body = warehouse.spend(
                query["subject"],
                datetime.fromisoformat(query["from"]),
                datetime.fromisoformat(query["to"]),
                datetime.fromisoformat(query["recent_from"]),
            )
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def teams_on_every_partition() -> list[str]:
    """One team name per partition of the budget-spend topic (so whichever worker stops,
    the survivor takes over some team budget)."""
    found: dict[int, str] = {}
    index = 0
    while len(found) < PARTITIONS:
        name = f"t{index}"
        found.setdefault(spend_partition(f"team:acme/{name}", PARTITIONS), name)
        index += 1
    return [found[p] for p in range(PARTITIONS)]


def costs_for(phase: str, per_key: int, teams: list[str]) -> list[CostEvent]:
    out = []
    for round_ in range(per_key):
        for index, key in enumerate(KEYS):
            now = datetime.now(UTC)
            out.append(
                CostEvent(
                    event_id=f"{phase}-{key}-{round_}",
                    request_id=f"req-{phase}-{key}-{round_}",
                    request_ts=now,
                    ts=now,
                    key_id=key,
                    org="acme",
                    team=teams[index % len(teams)],
                    total_cost=PRICE,
                    price_source="override:test",
                    priced=True,
                )
            )
    return out


def budget(budget_id: str, subject: str, limit: Decimal) -> Record:
    record = BudgetRecord(budget_id=budget_id, subject=subject, period="day", limit_usd=limit)
    return f"budget:{budget_id}".encode(), record.to_json()


def assigned_partitions(settings: Settings) -> int:
    try:
        answer = httpx.get(f"http://{settings.host}:{settings.processors_port}/healthz", timeout=2)
        return int(answer.json().get("assigned_partitions", 0))
    except (httpx.HTTPError, ValueError):
        return 0


def wait_for(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_two_workers_count_each_budget_exactly_and_survive_a_stop(
    broker: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    warehouse = Warehouse()
    teams = teams_on_every_partition()
    with ExitStack() as stack:
        url = stack.enter_context(read_api(warehouse))
        first = make_settings(
            broker,
            topic_partitions=PARTITIONS,
            processors_port=free_port(),
            read_api_url=url,
            # No sink runs here: the stand-in warehouse holds each cost before it is sent.
            processors={
                "budget": {"reconcile_timeout_s": 10.0, "tick_interval_s": 1.0, "sink_wait_s": 0}
            },
        )
        second = first.model_copy(
            update={"processors_port": free_port(), "data_dir": tmp_path / "data-second"}
        )
        budgets = [budget("b-org", "org:acme", ORG_LIMIT)] + [
            budget(f"b-{team}", f"team:acme/{team}", Decimal(100)) for team in teams
        ]
        produce(first, CONTROL, budgets)
        logs = [tmp_path / "first.log", tmp_path / "second.log"]
        workers = [
            stack.enter_context(worker_process(first, logs[0])),
            stack.enter_context(worker_process(second, logs[1])),
        ]
        # Both in the group before any cost: one owner per subject from the first cost on.
        wait_for(
            lambda: all(assigned_partitions(s) > 0 for s in (first, second)),
            timeout_s=40,
            what="both workers to get partitions",
        )
        reader = TopicReader(first, [BUDGETS, ENFORCEMENT])
        stack.callback(reader.close)
        states = reader.records[first.topic(BUDGETS)]
        enforcement = reader.records[first.topic(ENFORCEMENT)]

        def latest() -> dict[str, BudgetState]:
            found = {}
            for _, value in states:
                state = BudgetState.model_validate_json(value or b"")
                found[state.budget_id] = state
            return found

        def expected(costs: list[CostEvent]) -> dict[str, Decimal]:
            want = {"b-org": PRICE * len(costs)}
            for team in teams:
                want[f"b-{team}"] = PRICE * sum(1 for c in costs if c.team == team)
            return want

        def reached(want: dict[str, Decimal]) -> Callable[[], bool]:
            def done() -> bool:
                now = latest()
                return all(b in now and now[b].spent_usd == v for b, v in want.items())

            return done

        # Phase 1: 24 costs over 8 keys (1.20 USD against a 1 USD org budget).
        sent = costs_for("one", 3, teams)
        warehouse.store(sent)
        produce(first, COSTS, [(c.key_id.encode(), c.to_json()) for c in sent if c.key_id])
        reader.read_until(reached(expected(sent)), timeout_s=40, log=logs[0])
        reader.read_until(lambda: len(enforcement) >= 1, timeout_s=10, log=logs[0])
        blocks_with_two = list(enforcement)
        states_with_two = len(states)

        # Stop one worker mid-stream: the survivor takes over its partitions.
        workers[1].send_signal(signal.SIGTERM)
        more = costs_for("two", 2, teams)
        warehouse.store(more)
        produce(first, COSTS, [(c.key_id.encode(), c.to_json()) for c in more[:8] if c.key_id])
        assert workers[1].wait(timeout=30) == 0
        produce(first, COSTS, [(c.key_id.encode(), c.to_json()) for c in more[8:] if c.key_id])
        sent += more
        reader.read_until(reached(expected(sent)), timeout_s=45, log=logs[0])
        time.sleep(1.0)  # anything published late would show up now
        reader.read_until(lambda: True, timeout_s=1, log=logs[0])

    # The hard limit was crossed once: one block, by the one owner of org:acme.
    assert len(blocks_with_two) == 1
    (key, value) = blocks_with_two[0]
    decision = EnforcementDecision.model_validate_json(value or b"")
    assert key == b"budget|org:acme" and decision.action == "block"
    # Whoever owns org:acme after the stop may restate the block; it is never lifted.
    assert all(k == b"budget|org:acme" and v is not None for k, v in enforcement)

    parsed = [BudgetState.model_validate_json(value or b"") for _, value in states]
    final = {s.budget_id: s for s in parsed}
    assert {b: s.spent_usd for b, s in final.items()} == expected(sent)
    assert final["b-org"].spent_usd == Decimal("2.00") and final["b-org"].status == "hard"
    for budget_id in final:
        spent = [s.spent_usd for s in parsed if s.budget_id == budget_id]
        assert spent == sorted(spent), f"{budget_id} went backwards: {spent}"
    # Every team budget (one per partition) was published after the stop by the survivor.
    after = {s.budget_id for s in parsed[states_with_two:]}
    assert {f"b-{team}" for team in teams} <= after
