"""Seed the budget book from the warehouse when a worker gains budget subjects (on start,
and whenever partitions move), so a restart or a rebalance forgets no spend.

ClickHouse is the source of truth for money (ARCHITECTURE §7). The processors never
open it themselves — in embedded mode ingest owns the engine — so they ask ingest's
read API (`GET /api/spend?recent_from=`): the sum of the costs before `until`, and each
cost from then on by event id, which the book merges with what it counted (BudgetBook.
reconcile). No time watermark: costs reach the warehouse out of request_ts order (six
partitions, a worker restarted mid-load), and a watermark of the newest stored cost
would pass over every late one. The costs before `until` are all stored by then, as
long as the pipeline delivers within `reconcile_horizon_s` (ProcessorsSettings.budget).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from meterline.clients import AsyncReadClient, ClientError
from processors.budgets.logic import BudgetBook, BudgetUpdate

__all__ = ["ReconcileGaveUp", "reconcile_from_warehouse"]

log = logging.getLogger(__name__)


class ReconcileGaveUp(Exception):
    """The read API did not answer within the timeout (raised only when asked to)."""


async def reconcile_from_warehouse(
    book: BudgetBook,
    read: AsyncReadClient,
    timeout_s: float = 15.0,
    delay_s: float = 0.5,
    subjects: Iterable[str] | None = None,
    raise_on_give_up: bool = False,
    until: datetime | None = None,
) -> list[BudgetUpdate]:
    """Reconcile the current period of every budget (of `subjects` only, if given: the
    subjects of the partitions a worker just gained) with the warehouse's sum before
    `until` (default: the period's start) and its costs from then on; give up (loudly)
    after `timeout_s`. Reconciling again with the same `until` never lowers a spend.

    `read` carries a read API token allowed to read spend (finance or admin), when one is
    configured."""
    updates: list[BudgetUpdate] = []
    periods = book.current_periods(subjects)
    if not periods:
        return updates
    deadline = asyncio.get_running_loop().time() + timeout_s
    attempt = 0
    while True:
        attempt += 1
        try:
            for budget_id, subject, start, end in periods:
                spend = await read.spend(subject, start, end, recent_from=until or start)
                cut = spend.as_of or start
                recent = {
                    item.event_id: (item.request_ts, Decimal(item.cost_usd))
                    for item in spend.recent or ()
                }
                updates += book.reconcile(
                    {(budget_id, start): Decimal(spend.cost_usd)},
                    until=cut,
                    recent={(budget_id, start): recent},
                )
            log.info("reconciled %d budget(s) from the warehouse", len(periods))
            return updates
        except (ClientError, KeyError, ValueError, ArithmeticError) as exc:
            log.warning(
                "budget reconcile: read API at %s not usable (%s), attempt %d",
                read.base_url,
                exc,
                attempt,
            )
            if asyncio.get_running_loop().time() + delay_s > deadline:
                break
            await asyncio.sleep(delay_s)
    log.error(
        "budgets start WITHOUT reconciling from ClickHouse: spend before this start is "
        "not counted until the read API at %s answers; check `meterline ingest`",
        read.base_url,
    )
    if raise_on_give_up:
        raise ReconcileGaveUp(read.base_url)
    return updates
