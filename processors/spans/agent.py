"""The span cost agent: spans topic -> a CostEvent per costable LLM span on the costs topic.

Thin by design (see logic.py for which spans are costed). Values are read as raw bytes so
no payload can break deserialization inside Faust; rejects become dead letters.
"""

from __future__ import annotations

import logging

import faust
from faust.types import EventT, Message

from meterline.settings import Settings
from processors.cost.logic import Pricer, RejectedEvent
from processors.dlq import DeadLetterPublisher
from processors.metrics import ProcessorMetrics
from processors.spans.logic import STAGE, cost_for_span_payload
from schemas.topics import COSTS, SPANS

__all__ = ["AGENT_NAME", "register_span_cost_agent"]

log = logging.getLogger(__name__)

AGENT_NAME = "span_cost"


def register_span_cost_agent(
    app: faust.App,
    settings: Settings,
    metrics: ProcessorMetrics,
    dead_letters: DeadLetterPublisher,
) -> None:
    spans = app.topic(settings.topic(SPANS), key_serializer="raw", value_serializer="raw")
    costs = app.topic(settings.topic(COSTS), key_serializer="raw", value_serializer="raw")
    pricer = Pricer(settings.price_overrides)

    async def handle(message: Message) -> None:
        try:
            cost = cost_for_span_payload(message.value, pricer)
        except RejectedEvent as exc:
            await dead_letters.publish(message, exc.reason, STAGE)
            return
        except Exception as exc:  # a bug must not stop the stream; keep the evidence
            log.exception("span cost agent failed on %s@%s", message.partition, message.offset)
            await dead_letters.publish(message, f"internal error: {exc!r}", STAGE)
            return
        if cost is None:
            return
        key = cost.key_id.encode() if cost.key_id is not None else message.key
        await costs.send(key=key, value=cost.to_json())
        metrics.cost_emitted(cost.total_cost, cost.priced, cost.model)

    async def span_cost_agent(stream: faust.StreamT[bytes]) -> None:
        event: EventT
        async for event in stream.events():
            await handle(event.message)
            metrics.event_processed(AGENT_NAME)

    app.agent(spans, name=AGENT_NAME)(span_cost_agent)
