"""The agent-loop agents: requests, spans and costs -> agent_loop Anomalies and session
throttles or blocks.

Thin by design: sessions and signals live in `logic.AgentLoopDetector`, in process
memory (a session lives minutes; losing one on a restart only delays its detection,
and tansu's changelog recovery is unreliable anyway, ARCHITECTURE §7). Three agents
share the detector: requests (keyed by key_id), spans (by trace id) and costs (by
key_id); a session's steps are complete when one worker consumes every partition, as
in the embedded setup. Policies come from the control topic through the budgets'
`ControlReader`. Unreadable events are skipped here (the cost, span-cost and budget
agents dead-letter them); a policy of ours that cannot be used, or an internal error,
becomes an agent-loop dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import faust
from faust.types import Message

from meterline.settings import Settings
from processors.agentloop.logic import (
    KIND,
    STAGE,
    AgentLoopDetector,
    parse_event,
)
from processors.dlq import DeadLetterPublisher
from processors.llmjacking.policy import PolicyBook, Publication
from processors.metrics import ProcessorMetrics
from processors.streams import Guard, consume, policy_reader, raw_topic, send_all
from schemas.events.v1 import CostEvent, RequestEvent, SpanEvent
from schemas.topics import ANOMALIES, COSTS, ENFORCEMENT, REQUESTS, SPANS

__all__ = ["register_agentloop_agents"]

log = logging.getLogger(__name__)


def register_agentloop_agents(
    app: faust.App,
    settings: Settings,
    metrics: ProcessorMetrics,
    dead_letters: DeadLetterPublisher,
) -> AgentLoopDetector:
    outputs = {name: raw_topic(app, settings, name) for name in (ANOMALIES, ENFORCEMENT)}
    policies = PolicyBook(KIND, settings.processors.agent_loop.default_mode)
    # Decisions wait in the detector until the policies are known: an agent must not
    # stall on start (it would stop receiving, see processors/llmjacking/agent.py).
    detector = AgentLoopDetector(settings.processors.agent_loop, policies, policies_ready=False)

    async def publish(items: list[Publication]) -> None:
        await send_all(outputs, items)

    control = policy_reader(settings, policies, dead_letters, STAGE)

    def on_request(payload: bytes | None) -> list[Publication]:
        event = parse_event(RequestEvent, payload)
        return detector.observe_request(event) if event is not None else []

    def on_span(payload: bytes | None) -> list[Publication]:
        span = parse_event(SpanEvent, payload)
        return detector.observe_span(span) if span is not None else []

    def on_cost(payload: bytes | None) -> list[Publication]:
        cost = parse_event(CostEvent, payload)
        return detector.observe_cost(cost) if cost is not None else []

    def register(topic: str, observe: Callable[[bytes | None], list[Publication]]) -> None:
        name = f"agentloop_{topic}"
        guard = Guard(dead_letters, STAGE, log, name)

        async def handle(message: Message) -> None:
            await guard.run(message, lambda m: observe(m.value), publish)

        consume(app, raw_topic(app, settings, topic), name, metrics, handle)

    register(REQUESTS, on_request)
    register(SPANS, on_span)
    register(COSTS, on_cost)

    async def agentloop_control() -> None:
        await control.run()

    async def agentloop_policies_loaded() -> None:
        await control.ready.wait()
        await publish(detector.policies_loaded())

    app.task(agentloop_control)
    app.task(agentloop_policies_loaded)
    return detector
