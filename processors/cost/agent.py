"""The cost agent: requests topic -> one CostEvent per request on the costs topic; and
a timer pricing stored requests whose cost was lost (`recost.py`).

Thin by design: parsing and pricing live in `logic.py`. Values are read as raw bytes and
whatever the logic rejects becomes a dead letter (processors/streams.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import faust
from faust.types import Message

from meterline.clients import AsyncReadClient, ClientError
from meterline.settings import Settings
from processors.cost.logic import STAGE, Pricer, RejectedEvent, cost_for_payload
from processors.cost.recost import fetch_uncosted, recost
from processors.dlq import DeadLetterPublisher
from processors.metrics import ProcessorMetrics
from processors.streams import Guard, consume_batch, raw_topic
from schemas.events.v1 import CostEvent
from schemas.topics import COSTS, REQUESTS

__all__ = ["AGENT_NAME", "register_cost_agent", "send_cost"]

log = logging.getLogger(__name__)

AGENT_NAME = "cost"


async def send_cost(
    costs: faust.TopicT, metrics: ProcessorMetrics, cost: CostEvent, fallback_key: bytes | None
) -> None:
    """Publish a CostEvent keyed by its key_id (the source message's key without one)."""
    key = cost.key_id.encode() if cost.key_id is not None else fallback_key
    await costs.send(key=key, value=cost.to_json())
    metrics.cost_emitted(cost.total_cost, cost.priced, cost.model)


def register_cost_agent(
    app: faust.App,
    settings: Settings,
    metrics: ProcessorMetrics,
    dead_letters: DeadLetterPublisher,
) -> None:
    costs = raw_topic(app, settings, COSTS)
    pricer = Pricer(settings.price_overrides)
    guard = Guard(dead_letters, STAGE, log, "cost agent", (RejectedEvent,))

    async def handle(messages: Sequence[Message]) -> None:
        priced = await guard.each(messages, lambda m: cost_for_payload(m.value, pricer))
        for message, cost in priced:
            await send_cost(costs, metrics, cost, message.key)

    consume_batch(app, raw_topic(app, settings, REQUESTS), AGENT_NAME, metrics, handle)

    async def emit_recosted(cost: CostEvent) -> None:
        await send_cost(costs, metrics, cost, None)

    async def recost_uncosted() -> None:
        try:
            async with AsyncReadClient.from_settings(settings, "finance") as read:
                pages = fetch_uncosted(
                    read,
                    grace_s=settings.processors.recost.grace_s,
                    lookback_s=settings.processors.recost.lookback_s,
                )
                async for page in pages:
                    if emitted := await recost(page, pricer, emit_recosted):
                        metrics.recosted(emitted)
                        log.warning("recost: priced %d stored request(s) that had no cost", emitted)
        except ClientError as exc:  # ingest down or restarting: the next round retries
            log.info("recost: read API unavailable (%s)", exc)

    app.timer(settings.processors.recost.interval_s, name="recost_uncosted")(recost_uncosted)
