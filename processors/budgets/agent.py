"""The budgets agent: costs + BudgetRecords -> BudgetStates and enforcement decisions.

Thin by design: all accounting lives in `logic.BudgetBook`, held in process memory (not a
Faust table: tansu's changelog recovery is unreliable, ARCHITECTURE §7; spend is to be
reconciled from ClickHouse on start through the read API, see `reconcile.py`).

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
from schemas.events.v1 import BudgetRecord, utc_now
from schemas.topics import BUDGETS, COSTS, ENFORCEMENT

__all__ = ["AGENT_NAME", "register_budget_agent"]

log = logging.getLogger(__name__)

AGENT_NAME = "budgets"


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

    async def publish(updates: list[BudgetUpdate]) -> None:
        # value None is a tombstone: it lifts the subject's decision (ARCHITECTURE §3)
        await send_all(outputs, updates)

    async def guarded(message: Message, apply: Callable[[Message], list[BudgetUpdate]]) -> None:
        await guard.run(message, apply, publish)

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
            await guarded(message, apply_cost)

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
            await guarded(early.pop(0), apply_cost)
        early = None

    async def budget_control() -> None:
        await control.run()

    async def budget_rollover() -> None:
        await publish(book.tick())

    consume(app, raw_topic(app, settings, COSTS), AGENT_NAME, metrics, on_cost)
    app.task(budget_control)
    app.task(budget_start)
    app.timer(settings.processors.budget.tick_interval_s, name="budget_rollover")(budget_rollover)
    return book
