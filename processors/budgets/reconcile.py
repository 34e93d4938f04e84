"""Seed the budget book from the warehouse when a worker gains budget subjects (on start,
and whenever partitions move), so a restart or a rebalance forgets no spend.

ClickHouse is the source of truth for money (ARCHITECTURE §7). The processors never
open it themselves — in embedded mode ingest owns the engine — so they ask ingest's
read API (`GET /api/spend`). Each answer covers every cost up to its `as_of` watermark;
the book ignores later deliveries of those costs, so nothing counts twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
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
) -> list[BudgetUpdate]:
    """Reconcile the current period of every budget (of `subjects` only, if given: the
    subjects of the partitions a worker just gained); give up (loudly) after `timeout_s`.

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
                spend = await read.spend(subject, start, end)
                if spend.as_of is not None:
                    amount = Decimal(spend.cost_usd)
                    updates += book.reconcile({(budget_id, start): amount}, as_of=spend.as_of)
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
