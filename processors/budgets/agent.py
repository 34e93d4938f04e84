"""The budgets stage: costs -> per-subject spend -> BudgetStates and enforcement decisions.

Two handlers, so N processors workers in one consumer group give the same results as one:

- fan-out (costs topic, keyed by key_id, any worker): each CostEvent becomes one
  `BudgetSpend` per subject of its attribution that some budget watches (every subject
  until the control topic is loaded) on the internal budget-spend topic, partitioned by
  subject (schemas.budget_spend). Every cost producer (the cost stage, recost, span
  costs) is covered, and a cost that cannot be used is dead-lettered here.
- accounting (budget-spend topic): the worker that owns a partition owns its subjects'
  budgets; it alone counts their spend and publishes their states and decisions. All
  accounting lives in `logic.BudgetBook`, in process memory.

When partitions move, the new owner restores the subjects of the partitions it gained
from the warehouse through the read API (`reconcile.py`), once the sink has stored every
cost the processors fanned out (`sink_progress.py`), before it publishes anything for
them; their spend records wait meanwhile. A partition kept across a rebalance keeps its
book. No Faust table or changelog: tansu's changelog recovery is unreliable (ARCHITECTURE
§7). The worker that loses a partition publishes its held states first (on revoke) and
then forgets the partition's subjects without lifting their decisions.

States are coalesced per budget while costs come in: the latest is published at most
every STATE_INTERVAL_S, and at once (with every state held before it) when a budget's
status changes or an enforcement decision goes out; control changes, rollovers and the
reconcile publish at once too. Held states always go out before newer ones, so a
budget's state never goes backwards on the topic from one worker; across an ownership
change the new owner's state is the warehouse's figure plus what it counts after, and
gateways keep the highest state per (budget, period) (gateway/budgets.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

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
    parse_spend,
    spend_records,
)
from processors.budgets.reconcile import ReconcileGaveUp, reconcile_from_warehouse
from processors.budgets.sink_progress import wait_for_sink
from processors.dlq import DeadLetterPublisher
from processors.metrics import ProcessorMetrics
from processors.streams import Guard, consume, consume_batch, on_rebalance, raw_topic, send_all
from schemas.budget_spend import spend_partition
from schemas.events.v1 import BudgetRecord, BudgetState, utc_now
from schemas.topics import BUDGET_SPEND, BUDGETS, COSTS, ENFORCEMENT

__all__ = ["AGENT_NAME", "SPEND_AGENT_NAME", "register_budget_agent"]

log = logging.getLogger(__name__)

_CATCH_UP_EVERY_S = 5.0  # a restore that could not reconcile tries again this often

AGENT_NAME = "budgets"  # the fan-out of costs
SPEND_AGENT_NAME = "budget_spend"  # the accounting of the subjects this worker owns
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
    spend_topic = raw_topic(app, settings, BUDGET_SPEND)
    spend_topic_name = settings.topic(BUDGET_SPEND)
    # Producers and owners agree on a subject's partition through the settings (every
    # worker of a deployment has the same), not through a client's partitioner.
    partitions = settings.effective_topic_partitions
    guard = Guard(dead_letters, STAGE, log, "budgets", (RejectedMessage,))

    # Partitions of the budget-spend topic: assigned to this worker (restored or not),
    # restored (this worker publishes for their subjects), and the spend records of the
    # others, held until their restore is done. `restoring`: partition -> its restore.
    assigned: set[int] = set()
    owned: set[int] = set()
    held: dict[int, list[Message]] = {}
    restoring: dict[int, int] = {}
    restores = 0
    assignments = 0  # assignments seen (none yet: hold every spend record)

    def owns(subject: str) -> bool:
        return spend_partition(subject, partitions) in owned

    book = BudgetBook(now, owns)

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
        await guard.run(message, apply_spend, publish_counted)

    def apply_spend(message: Message) -> list[BudgetUpdate]:
        return book.record_spend(parse_spend(message.value))

    def apply_control(message: Message) -> list[BudgetUpdate]:
        change = parse_control(message.key, message.value)
        if isinstance(change, BudgetRecord):
            return book.apply(change)
        return book.remove(change) if change is not None else []

    async def on_control(message: Message) -> None:
        await guarded(message, apply_control)

    control = ControlReader(settings, on_control)

    # --- fan-out: costs -> spend per subject (stateless, any worker) -----------------

    async def on_costs(messages: Sequence[Message]) -> None:
        # Once every budget is known, a cost goes only to the subjects some budget watches
        # (their owners would count nothing for the others); before, to every subject.
        watched = book.subjects() if control.ready.is_set() else None
        fanned = await guard.each(messages, lambda m: spend_records(parse_cost(m.value), watched))
        for _message, shares in fanned:
            for share in shares:
                await spend_topic.send(
                    key=share.subject.encode(),
                    value=share.to_json(),
                    partition=spend_partition(share.subject, partitions),
                )

    # --- accounting: the spend of the subjects this worker owns ----------------------

    async def on_spend(message: Message) -> None:
        # The agent never waits (a Faust agent that stalls while the worker joins its
        # group stops receiving, and the worker then hangs on stop): the spend of a
        # partition not restored yet waits in `held`. (If the worker dies first, the next
        # owner's reconcile counts it from ClickHouse.)
        if message.partition in owned:
            await counted(message)
        elif message.partition in assigned or not assignments:
            held.setdefault(message.partition, []).append(message)
        # else: a late delivery of a partition this worker gave up: its owner counts it

    def subjects_of(parts: set[int]) -> set[str]:
        return {s for s in book.subjects() if spend_partition(s, partitions) in parts}

    async def restore(gained: set[int], number: int) -> None:
        """Seed the subjects of `gained` from the warehouse, then publish for them."""
        await control.ready.wait()  # count nothing against a half-loaded book
        mine = {p for p in gained if restoring.get(p) == number}
        subjects = subjects_of(mine)
        book.release(subjects)  # what this worker counted when it last owned them is stale
        config = settings.processors.budget
        # The sum before `until` and each cost after it, merged by event id (reconcile.py);
        # the same `until` for every later reconcile of this restore.
        until = now() - timedelta(seconds=config.reconcile_horizon_s)
        # Every cost behind the spend counted before this worker's turn must be stored
        # first, or the warehouse figure misses it (sink_progress.py).
        exact = await wait_for_sink(settings, config.sink_wait_s)
        try:  # nothing to publish yet: the subjects are not ours until restored
            async with AsyncReadClient.from_settings(settings, "finance") as read:
                await reconcile_from_warehouse(
                    book,
                    read,
                    config.reconcile_timeout_s,
                    subjects=subjects,
                    raise_on_give_up=config.reconcile_timeout_s > 0,
                    until=until,
                )
        except ReconcileGaveUp:  # counted from zero meanwhile: catch up when it answers
            exact = False
        except Exception:  # a bug must not hold the partitions' spend back forever
            log.exception("budgets: reconcile of spend partitions %s failed", sorted(mine))
        if not exact and config.reconcile_timeout_s > 0:  # 0: no read API to wait for
            task = asyncio.ensure_future(catch_up(mine, until))
            background.add(task)
            task.add_done_callback(background.discard)
        mine = {p for p in mine if restoring.get(p) == number}  # still ours?
        for partition in mine:
            del restoring[partition]
        owned.update(mine)
        # The restored states first, then the spend that waited (records arriving from
        # now on are counted by the agent directly: the sum is the same in any order).
        await publish(book.take_over(subjects_of(mine)))
        for partition in sorted(mine):
            for message in held.pop(partition, []):
                if partition not in owned:
                    break  # lost again meanwhile: its new owner counts it
                await counted(message)
        if mine:
            log.info("budgets: restored spend partitions %s", sorted(mine))

    async def catch_up(parts: set[int], until: datetime) -> None:
        """A restore that could not reach the read API, or not wait for the sink, is
        reconciled again (same `until`: the spend only grows) until both were fine, or
        `reconcile_horizon_s` has passed (every cost is stored by then, or the horizon
        assumption fails anyway), while the partitions are still ours."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.processors.budget.reconcile_horizon_s
        while True:
            await asyncio.sleep(_CATCH_UP_EVERY_S)
            still = {p for p in parts if p in owned and p not in restoring}
            if not still:  # given up, or being restored again: that restore reconciles
                return
            subjects = subjects_of(still)
            before = {b: book.spent(b) for b, _, _, _ in book.current_periods(subjects)}
            try:
                exact = await wait_for_sink(settings, 0.0)
                async with AsyncReadClient.from_settings(settings, "finance") as read:
                    updates = await reconcile_from_warehouse(
                        book,
                        read,
                        _CATCH_UP_EVERY_S,
                        subjects=subjects,
                        raise_on_give_up=True,
                        until=until,
                    )
            except ReconcileGaveUp:
                continue
            except Exception:  # a bug: say so and stop trying
                log.exception("budgets: catch-up reconcile of %s failed", sorted(still))
                return
            # What moved: a state whose spend is unchanged would only repeat itself.
            await publish(
                [
                    u
                    for u in updates
                    if not isinstance(u.value, BudgetState)
                    or u.value.spent_usd != before.get(u.value.budget_id)
                ]
            )
            if exact or loop.time() >= deadline:
                log.info("budgets: spend partitions %s caught up from the warehouse", sorted(still))
                return

    async def on_revoked(revoked: set[tuple[str, int]]) -> None:
        await flush()  # held states go out while this worker still owns their subjects

    async def on_assigned(assigned_now: set[tuple[str, int]]) -> None:
        nonlocal restores, assignments
        assignments += 1
        now_assigned = {p for topic, p in assigned_now if topic == spend_topic_name}
        lost, gained = assigned - now_assigned, now_assigned - assigned
        assigned.clear()
        assigned.update(now_assigned)
        for partition in set(held) - now_assigned:
            del held[partition]  # delivered before the assignment said it is not ours
        if lost:
            subjects = subjects_of(lost)
            owned.difference_update(lost)
            for partition in lost:
                held.pop(partition, None)
                restoring.pop(partition, None)
            for budget_id, update in list(pending.items()):
                if isinstance(update.value, BudgetState) and update.value.subject in subjects:
                    del pending[budget_id]
            book.release(subjects)
            log.info("budgets: gave up spend partitions %s", sorted(lost))
        if gained:
            restores += 1
            for partition in gained:
                restoring[partition] = restores
            task = asyncio.ensure_future(restore(gained, restores))
            background.add(task)
            task.add_done_callback(background.discard)

    async def on_shutdown(sender: object, **_: object) -> None:
        await flush()  # a clean stop publishes what it holds, as a revoke does

    background: set[asyncio.Future[None]] = set()
    on_rebalance(app, on_assigned, on_revoked)
    app.on_before_shutdown.connect(on_shutdown, sender=app)

    async def budget_control() -> None:
        await control.run()

    async def budget_rollover() -> None:
        await publish(book.tick())

    async def budget_states() -> None:
        await flush()

    consume_batch(app, raw_topic(app, settings, COSTS), AGENT_NAME, metrics, on_costs)
    consume(app, spend_topic, SPEND_AGENT_NAME, metrics, on_spend)
    app.task(budget_control)
    app.timer(settings.processors.budget.tick_interval_s, name="budget_rollover")(budget_rollover)
    app.timer(STATE_INTERVAL_S, name="budget_states")(budget_states)
    return book
