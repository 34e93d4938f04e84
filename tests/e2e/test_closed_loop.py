"""The closed loop through the real stack: budgets computed by the stream processors and
manual decisions reach every gateway through the compacted topics, and the control plane
survives restarts. The official openai SDK is the client throughout."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from meterline.runtime import ServiceProcess, Stack, meterline_command
from tests.conftest import free_port
from tests.e2e.stack_helpers import Admin, eventually, stack_settings

pytestmark = pytest.mark.e2e

PROMPT = "Summarize the quarterly invoice backlog for the finance team, please. " * 5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    instance = Stack(stack_settings(tmp_path_factory.mktemp("loop")), mock_provider=True)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def _client(stack: Stack, key: str, port: int | None = None) -> OpenAI:
    s = stack.settings
    return OpenAI(
        base_url=f"http://{s.host}:{port or s.gateway_port}/v1", api_key=key, max_retries=0
    )


def _ask(client: OpenAI) -> int:
    """One request; the HTTP status it ended with."""
    try:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": PROMPT}], max_tokens=40
        )
        return 200
    except openai.APIStatusError as exc:
        return exc.status_code


def _day() -> tuple[str, str]:
    today = datetime.now(UTC).date()
    return today.isoformat(), (today + timedelta(days=1)).isoformat()


def _warehouse_spend(admin: Admin, subject: str) -> Decimal:
    start, end = _day()
    return Decimal(
        admin.read("/api/spend", subject=subject, **{"from": start, "to": end})["cost_usd"]
    )


def _budget_state(admin: Admin, budget_id: str) -> dict[str, Any]:
    [budget] = [b for b in admin.get("/admin/budgets")["data"] if b["budget_id"] == budget_id]
    return dict(budget.get("state") or {})


def test_a_hammered_key_is_blocked_with_bounded_overspend(stack: Stack) -> None:
    admin = Admin(stack)
    key = admin.create_key("acme", "hammer")
    limit = Decimal("0.02")
    budget = admin.post(
        "/admin/budgets",
        {"subject": f"key:{key['key_id']}", "period": "day", "limit_usd": str(limit)},
    )
    eventually(lambda: _budget_state(admin, budget["budget_id"]), what="first BudgetState")

    first_refusal: list[float] = []
    lock = threading.Lock()

    def hammer() -> int:
        client = _client(stack, key["key"])
        sent = 0
        while sent < 200:
            sent += 1
            status = _ask(client)
            if status == 403:
                with lock:
                    first_refusal.append(time.time())
                return sent
            assert status == 200, status
        return sent

    with ThreadPoolExecutor(16) as pool:
        sent = sum(pool.map(lambda _: hammer(), range(16)))
    assert len(first_refusal) == 16, "every client ends up refused"

    subject = f"key:{key['key_id']}"
    rows = eventually(
        lambda: (
            (body := admin.read("/api/requests", key=key["key_id"], limit=1000))["count"] == sent
            and all(row["cost_usd"] is not None for row in body["requests"])
            and body["requests"]
        ),
        what="every request and its cost in ClickHouse",
    )
    spent = _warehouse_spend(admin, subject)
    costs = [Decimal(row["cost_usd"]) for row in rows]
    # Overspend is bounded by what was already in flight: at most one request per client.
    assert limit <= spent <= limit + 16 * max(costs), (spent, limit)

    # Latency of the loop: from the request that crossed the limit to the first refusal.
    cumulative = Decimal(0)
    crossed_at = None
    for row in sorted(rows, key=lambda r: r["ts"]):
        cumulative += Decimal(row["cost_usd"])
        if cumulative >= limit:
            crossed_at = datetime.fromisoformat(row["ts"]).timestamp()
            break
    assert crossed_at is not None
    delay_ms = (min(first_refusal) - crossed_at) * 1000
    print(
        f"\nbudget loop: {sent} requests, spent ${spent} of ${limit} "
        f"(overspend ${spent - limit}); crossing -> first 403: {delay_ms:.0f} ms"
    )
    assert delay_ms < 5000


def test_a_team_budget_blocks_every_key_of_the_team_and_no_other(stack: Stack) -> None:
    admin = Admin(stack)
    ml_keys = [admin.create_key("acme", "ml") for _ in range(2)]
    other = admin.create_key("acme", "search")
    limit = Decimal("0.004")
    budget = admin.post(
        "/admin/budgets", {"subject": "team:acme/ml", "period": "day", "limit_usd": str(limit)}
    )
    client = _client(stack, ml_keys[0]["key"])

    def counted_over_the_limit() -> bool:
        # The gateway's own float estimate can refuse a request early, and the next exact
        # snapshot below the limit lets traffic through again (gateway/budgets.py); once the
        # processors' exact count has crossed the limit, the team stays blocked.
        _ask(client)
        [listed] = [
            b for b in admin.get("/admin/budgets")["data"] if b["budget_id"] == budget["budget_id"]
        ]
        state = listed.get("state") or {}
        return Decimal(str(state.get("spent_usd") or 0)) >= limit

    eventually(counted_over_the_limit, timeout_s=60, what="the team's spend to cross its limit")
    for key in ml_keys:
        assert _ask(_client(stack, key["key"])) == 403
    assert _ask(_client(stack, other["key"])) == 200


def test_a_manual_block_reaches_every_gateway_within_a_second(stack: Stack, tmp_path: Path) -> None:
    second_port = free_port()
    env = {**os.environ, **stack.settings.child_env(), "METERLINE_GATEWAY_PORT": str(second_port)}
    second = ServiceProcess(
        "gateway-2",
        meterline_command("gateway"),
        f"http://127.0.0.1:{second_port}/healthz",
        tmp_path / "gateway-2.log",
    )
    second.start(env)
    try:
        second.wait_healthy(30)
        admin = Admin(stack)
        key = admin.create_key("globex", "research")
        clients = [_client(stack, key["key"]), _client(stack, key["key"], second_port)]
        for client in clients:
            eventually(lambda c=client: _ask(c) == 200, timeout_s=10, what="the key on both")

        admin.post(
            "/admin/enforcement",
            {"subject": f"key:{key['key_id']}", "action": "block", "reason": "leaked in a repo"},
        )
        blocked_at = time.monotonic()
        for client in clients:
            eventually(lambda c=client: _ask(c) == 403, timeout_s=1.0, what="403 within 1 s")
        print(f"\nmanual block on two gateways: {(time.monotonic() - blocked_at) * 1000:.0f} ms")

        admin.delete(f"/admin/enforcement/key:{key['key_id']}")
        for client in clients:
            eventually(lambda c=client: _ask(c) == 200, timeout_s=1.0, what="200 within 1 s")
    finally:
        second.stop()


def test_processors_killed_mid_load_forget_no_spend_and_count_nothing_twice(stack: Stack) -> None:
    admin = Admin(stack)
    key = admin.create_key("initech", "platform")
    subject = f"key:{key['key_id']}"
    budget = admin.post("/admin/budgets", {"subject": subject, "period": "day", "limit_usd": "5"})
    processors = next(s for s in stack.services if s.name == "processors")
    client = _client(stack, key["key"])
    stop = threading.Event()
    statuses: list[int] = []

    def load() -> None:
        while not stop.is_set():
            statuses.append(_ask(client))
            time.sleep(0.03)  # a steady stream, not a flood: under 1,000 requests in all

    worker = threading.Thread(target=load)
    worker.start()
    try:
        eventually(lambda: len(statuses) >= 40, what="load before the kill")
        assert processors.process is not None
        os.kill(processors.process.pid, signal.SIGKILL)
        processors.process.wait()
        time.sleep(1.0)  # requests keep flowing into Kafka while no processor runs
        env = {**os.environ, **stack.settings.child_env()}
        processors.start(env)
        processors.wait_healthy(60)
        restarted_at = len(statuses)
        eventually(lambda: len(statuses) >= restarted_at + 40, what="load after the restart")
    finally:
        stop.set()
        worker.join(30)
    assert set(statuses) == {200}
    sent = len(statuses)

    last: dict[str, Any] = {}

    def settled() -> dict[str, Any] | None:
        showback = admin.read("/api/showback", group_by="key", key=key["key_id"])
        last["costed"] = (showback["totals"]["requests"], sent)
        if showback["totals"]["requests"] != sent:
            return None
        state = _budget_state(admin, budget["budget_id"])
        warehouse = _warehouse_spend(admin, subject)
        last["spend"] = (state.get("spent_usd"), warehouse)
        return state if Decimal(state.get("spent_usd") or -1) == warehouse else None

    try:
        state = eventually(settled, timeout_s=90, what="budget spend == warehouse spend")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {last}") from None
    # The warehouse counts each request once: one cost per request, and the aggregate
    # (spend_daily) equals the sum of the per-request rows.
    per_request = admin.read("/api/requests", key=key["key_id"], limit=1000)
    assert per_request["count"] == sent
    showback = admin.read("/api/showback", group_by="key", key=key["key_id"])
    assert showback["totals"]["requests"] == sent
    assert Decimal(showback["totals"]["cost_usd"]) == sum(
        (Decimal(r["cost_usd"]) for r in per_request["requests"]), Decimal(0)
    )
    assert Decimal(state["spent_usd"]) == Decimal(showback["totals"]["cost_usd"])


def test_the_whole_stack_restarts_with_keys_budgets_and_blocks_in_force(stack: Stack) -> None:
    admin = Admin(stack)
    survivor = admin.create_key("umbrella", "bio")
    blocked = admin.create_key("umbrella", "bio")
    admin.post(
        "/admin/enforcement",
        {"subject": f"key:{blocked['key_id']}", "action": "block", "reason": "incident 42"},
    )
    budget = admin.post(
        "/admin/budgets", {"subject": "org:umbrella", "period": "month", "limit_usd": "100"}
    )
    assert _ask(_client(stack, survivor["key"])) == 200
    assert _ask(_client(stack, blocked["key"])) == 403
    # Give the sink a moment to store the control plane, then restart everything,
    # broker included (its topics live in memory only).
    eventually(
        lambda: any(
            row["key_id"] == blocked["key_id"] and row["status_code"] == 403
            for row in admin.read("/api/requests", limit=50)["requests"]
        ),
        what="the refused request in ClickHouse",
    )
    time.sleep(1.0)
    stack.stop()
    stack.start()

    assert _ask(_client(stack, survivor["key"])) == 200
    refused = _client(stack, blocked["key"])
    with pytest.raises(openai.PermissionDeniedError) as info:
        refused.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "incident 42" in str(info.value)
    budgets = {b["budget_id"] for b in admin.get("/admin/budgets")["data"]}
    assert budget["budget_id"] in budgets
