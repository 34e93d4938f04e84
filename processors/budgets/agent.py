"""The budgets agent: costs + BudgetRecords -> BudgetStates and enforcement decisions.

Thin by design: all accounting lives in `logic.BudgetBook`, held in process memory (not a
Faust table: tansu's changelog recovery is unreliable, ARCHITECTURE §7; spend is to be
reconciled from ClickHouse on start through the read API, see `reconcile.py`).

States are coalesced per budget while costs come in: the latest is published at most
every STATE_INTERVAL_S, and at once (with every state held before it) when a budget's
status changes or an enforcement decision goes out; control changes, rollovers and the
reconcile publish at once too. Held states always go out before newer ones, so a
budget's state never goes backwards on the topic.

Limitation: an org or team budget sums costs of many keys, and costs are partitioned by
key_id, so the book is only complete when one worker consumes every partition of the
costs topic, as in the embedded setup. Several workers would each see a share of the
spend; that needs a repartition by budget (or a shared store) first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import faust
from faust.types import Message

from meterline.clients import AsyncReadClient
from meterline.settings import Settings
from processors.budgets.control import ControlReader
from processors.budgets.logic import (
    STAGE,
    BudgetBook,
    BudgetUpdate,
    RejectedMessage,
    parse_control,
    parse_cost,
)
from processors.budgets.reconcile import reconcile_from_warehouse
from processors.dlq import DeadLetterPublisher
from processors.metrics import ProcessorMetrics
from processors.streams import Guard, consume, raw_topic, send_all
from schemas.events.v1 import BudgetRecord, BudgetState, utc_now
from schemas.topics import BUDGETS, COSTS, ENFORCEMENT

__all__ = ["AGENT_NAME", "register_budget_agent"]

log = logging.getLogger(__name__)

AGENT_NAME = "budgets"
# A budget's states while costs come in: at most one per this interval (the latest), and
# at once when its status changes or a decision goes out.
STATE_INTERVAL_S = 0.25


def register_budget_agent(
    app: faust.App,
    settings: Settings,
    metrics: ProcessorMetrics,
    dead_letters: DeadLetterPublisher,
    now: Callable[[], datetime] = utc_now,
) -> BudgetBook:
    outputs = {name: raw_topic(app, settings, name) for name in (BUDGETS, ENFORCEMENT)}
    book = BudgetBook(now)
    guard = Guard(dead_letters, STAGE, log, "budgets", (RejectedMessage,))

    # BudgetStates coalesced per budget (last state wins): budget_id -> the latest state
    # not sent yet, and the status of the last state sent.
    pending: dict[str, BudgetUpdate] = {}
    sent_status: dict[str, str] = {}

    async def flush() -> None:
        if not pending:
            return
        states = list(pending.values())
        pending.clear()
        for state in states:
            if isinstance(state.value, BudgetState):
                sent_status[state.key] = state.value.status
        await send_all(outputs, states)

    async def publish(updates: list[BudgetUpdate]) -> None:
        # Whatever is pending goes first, so no budget's state ever goes backwards.
        # value None is a tombstone: it lifts the subject's decision (ARCHITECTURE §3)
        await flush()
        for update in updates:
            if isinstance(update.value, BudgetState):
                sent_status[update.key] = update.value.status
        await send_all(outputs, updates)

    async def publish_counted(updates: list[BudgetUpdate]) -> None:
        """A cost's updates: its states wait in `pending` (at most STATE_INTERVAL_S) unless
        a status changes or a decision goes out: those, and every state before them, now."""
        urgent = False
        for update in updates:
            state = update.value
            if update.topic != BUDGETS or not isinstance(state, BudgetState):
                urgent = True
                continue
            urgent = urgent or sent_status.get(update.key) != state.status
            pending.pop(update.key, None)  # re-inserted: ordered by its latest state
            pending[update.key] = update
        if urgent:
            await flush()
            await send_all(outputs, [u for u in updates if u.topic != BUDGETS])

    async def guarded(message: Message, apply: Callable[[Message], list[BudgetUpdate]]) -> None:
        await guard.run(message, apply, publish)

    async def counted(message: Message) -> None:
        await guard.run(message, apply_cost, publish_counted)

    def apply_cost(message: Message) -> list[BudgetUpdate]:
        return book.record(parse_cost(message.value))

    def apply_control(message: Message) -> list[BudgetUpdate]:
        change = parse_control(message.key, message.value)
        if isinstance(change, BudgetRecord):
            return book.apply(change)
        return book.remove(change) if change is not None else []

    async def on_control(message: Message) -> None:
        await guarded(message, apply_control)

    control = ControlReader(settings, on_control)

    # Costs that arrive before the book is loaded and reconciled wait here. The agent
    # itself never waits: a Faust agent that stalls while the worker joins its group stops
    # receiving, and the worker then hangs on stop. (If the worker dies first, the
    # reconcile on the next start counts these costs from ClickHouse.)
    early: list[Message] | None = []

    async def on_cost(message: Message) -> None:
        if early is not None:
            early.append(message)
        else:
            await counted(message)

    async def budget_start() -> None:
        nonlocal early
        await control.ready.wait()  # count nothing against a half-loaded book
        # Then seed the book from the warehouse: a restart must forget no spend.
        async with AsyncReadClient.from_settings(settings, "finance") as read:
            updates = await reconcile_from_warehouse(
                book, read, settings.processors.budget.reconcile_timeout_s
            )
        await publish(updates)
        while early:
            await counted(early.pop(0))
        early = None

    async def budget_control() -> None:
        await control.run()

    async def budget_rollover() -> None:
        await publish(book.tick())

    async def budget_states() -> None:
        await flush()

    consume(app, raw_topic(app, settings, COSTS), AGENT_NAME, metrics, on_cost)
    app.task(budget_control)
    app.task(budget_start)
    app.timer(settings.processors.budget.tick_interval_s, name="budget_rollover")(budget_rollover)
    app.timer(STATE_INTERVAL_S, name="budget_states")(budget_states)
    return book
