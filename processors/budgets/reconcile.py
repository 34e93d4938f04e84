"""Seed the budget book from the warehouse on start, so a restart forgets no spend.

ClickHouse is the source of truth for money (ARCHITECTURE §7). The processors never
open it themselves — in embedded mode ingest owns the engine — so they ask ingest's
read API (`GET /api/spend`). Each answer covers every cost up to its `as_of` watermark;
the book ignores later deliveries of those costs, so nothing counts twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from decimal import Decimal

import httpx

from processors.budgets.logic import BudgetBook, BudgetUpdate

__all__ = ["reconcile_from_warehouse"]

log = logging.getLogger(__name__)


async def _spend(
    client: httpx.AsyncClient, subject: str, start: datetime, end: datetime
) -> tuple[Decimal, datetime | None]:
    response = await client.get(
        "/api/spend", params={"subject": subject, "from": start.isoformat(), "to": end.isoformat()}
    )
    response.raise_for_status()
    body = response.json()
    as_of = datetime.fromisoformat(body["as_of"]) if body["as_of"] else None
    return Decimal(body["cost_usd"]), as_of


async def reconcile_from_warehouse(
    book: BudgetBook,
    read_api_url: str,
    timeout_s: float = 15.0,
    delay_s: float = 0.5,
    token: str | None = None,
) -> list[BudgetUpdate]:
    """Reconcile every budget's current period; give up (loudly) after `timeout_s`.

    `token`: a read API token allowed to read spend (admin or finance), when configured."""
    updates: list[BudgetUpdate] = []
    periods = book.current_periods()
    if not periods:
        return updates
    deadline = asyncio.get_running_loop().time() + timeout_s
    attempt = 0
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=read_api_url, timeout=10.0, headers=headers) as client:
        while True:
            attempt += 1
            try:
                for budget_id, subject, start, end in periods:
                    amount, as_of = await _spend(client, subject, start, end)
                    if as_of is not None:
                        updates += book.reconcile({(budget_id, start): amount}, as_of=as_of)
                log.info("reconciled %d budget(s) from the warehouse", len(periods))
                return updates
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                log.warning(
                    "budget reconcile: read API at %s not usable (%s), attempt %d",
                    read_api_url,
                    exc,
                    attempt,
                )
                if asyncio.get_running_loop().time() + delay_s > deadline:
                    break
                await asyncio.sleep(delay_s)
    log.error(
        "budgets start WITHOUT reconciling from ClickHouse: spend before this start is "
        "not counted until the read API at %s answers; check `meterline ingest`",
        read_api_url,
    )
    return updates
