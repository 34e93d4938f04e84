"""The span cost agent: spans topic -> a CostEvent per costable LLM span on the costs topic.

Thin by design (see logic.py for which spans are costed). Values are read as raw bytes;
rejects become dead letters (processors/streams.py).
"""

from __future__ import annotations

import logging

import faust
from faust.types import Message

from meterline.settings import Settings
from processors.cost.agent import send_cost
from processors.cost.logic import Pricer, RejectedEvent
from processors.dlq import DeadLetterPublisher
from processors.metrics import ProcessorMetrics
from processors.spans.logic import STAGE, ProxiedSpans, cost_for_span_payload
from processors.streams import Guard, consume, raw_topic
from schemas.events.v1 import CostEvent
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
    costs = raw_topic(app, settings, COSTS)
    pricer = Pricer(settings.price_overrides)
    proxied = ProxiedSpans()  # app spans whose call the gateway costed already
    guard = Guard(dead_letters, STAGE, log, "span cost agent", (RejectedEvent,))

    async def handle(message: Message) -> None:
        async def emit(cost: CostEvent | None) -> None:
            if cost is not None:
                await send_cost(costs, metrics, cost, message.key)

        await guard.run(message, lambda m: cost_for_span_payload(m.value, pricer, proxied), emit)

    consume(app, raw_topic(app, settings, SPANS), AGENT_NAME, metrics, handle)
