"""Price again what the warehouse holds without a cost (ARCHITECTURE §7: heal, don't trust).

Periodically asks ingest's read API (`GET /api/spend/uncosted`) for requests stored more
than `processors.recost.grace_s` ago with no cost row, and prices each exactly as the cost agent
does: the same `cost_for_payload`, the same deterministic event id (the request's), so
a cost that was only late, not lost, is counted once by the sink and the budget book.
The processors never open ClickHouse (ingest owns the embedded engine), as for
budget reconciliation.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from meterline.clients import AsyncReadClient
from processors.cost.logic import Pricer, RejectedEvent, cost_for_payload
from schemas.events.v1 import CostEvent

__all__ = ["fetch_uncosted", "recost"]

log = logging.getLogger(__name__)


async def fetch_uncosted(
    read: AsyncReadClient, *, grace_s: float, lookback_s: float, page_size: int = 1000
) -> AsyncIterator[list[bytes]]:
    """Pages of uncosted requests as RequestEvent JSON, oldest first, the whole window:
    a request the pricing keeps rejecting never hides the ones after it."""
    pages = read.uncosted_pages(older_than_s=grace_s, within_s=lookback_s, page_size=page_size)
    async for page in pages:
        yield [event.to_json() for event in page.requests]


async def recost(
    payloads: list[bytes], pricer: Pricer, emit: Callable[[CostEvent], Awaitable[None]]
) -> int:
    """Price and emit each payload; the number emitted. A payload the pricing rejects was
    dead-lettered when it first arrived and stays uncosted: it is logged, not retried."""
    emitted = 0
    for payload in payloads:
        try:
            cost = cost_for_payload(payload, pricer)
        except RejectedEvent as exc:
            log.warning("recost: request left uncosted: %s", exc.reason)
            continue
        await emit(cost)
        emitted += 1
    return emitted
