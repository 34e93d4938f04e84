"""The agent-loop agents: requests, spans and costs -> agent_loop Anomalies and session
throttles or blocks.

Thin by design: sessions and signals live in `logic.AgentLoopDetector`, in process
memory (a session lives minutes; losing one on a restart only delays its detection,
and tansu's changelog recovery is unreliable anyway, ARCHITECTURE §7).

Requests are keyed by key_id, spans by trace id, costs by key_id, and a session's steps
can come from several keys and from OTLP. So three routing stages re-send each event
that belongs to a session, the same bytes, to the internal agentloop-input topic, keyed
`<source topic>|<session subject>` on the session's partition (`partition_for`): with
several workers one of them holds each session, and sees all of its steps in order. A
worker that loses agentloop-input partitions drops their sessions.

Policies come from the control topic through the budgets' `ControlReader`. Unreadable
events are skipped here (the cost, span-cost and budget agents dead-letter them); a
policy of ours that cannot be used, or an internal error, becomes an agent-loop dead
letter.
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
    session_of,
)
from processors.dlq import DeadLetterPublisher
from processors.llmjacking.policy import PolicyBook, Publication
from processors.metrics import ProcessorMetrics
from processors.streams import (
    Guard,
    consume,
    drop_moved_keys,
    policy_reader,
    raw_topic,
    send_all,
)
from schemas.events.v1 import CostEvent, Event, RequestEvent, SpanEvent
from schemas.topics import (
    AGENTLOOP_INPUT,
    ANOMALIES,
    COSTS,
    ENFORCEMENT,
    REQUESTS,
    SPANS,
    parse_routed_key,
    partition_for,
    routed_key,
)

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

    observers: dict[str, Callable[[bytes | None], list[Publication]]] = {
        REQUESTS: on_request,
        SPANS: on_span,
        COSTS: on_cost,
    }
    sessions = raw_topic(app, settings, AGENTLOOP_INPUT)
    partitions = settings.effective_topic_partitions  # every worker's settings agree

    def register_route(topic: str, model: type[Event]) -> None:
        name = f"agentloop_{topic}"
        guard = Guard(dead_letters, STAGE, log, name)

        def route(message: Message) -> list[tuple[str, bytes]]:
            event = parse_event(model, message.value)
            subject = session_of(event) if event is not None else None  # type: ignore[arg-type]
            return [(subject, message.value)] if subject and message.value else []

        async def send(routes: list[tuple[str, bytes]]) -> None:
            for subject, value in routes:
                key, partition = routed_key(topic, subject), partition_for(subject, partitions)
                await sessions.send(key=key, value=value, partition=partition)

        async def handle(message: Message) -> None:
            await guard.run(message, route, send)

        consume(app, raw_topic(app, settings, topic), name, metrics, handle)

    register_route(REQUESTS, RequestEvent)
    register_route(SPANS, SpanEvent)
    register_route(COSTS, CostEvent)
    guard = Guard(dead_letters, STAGE, log, "agentloop")

    def observe(message: Message) -> list[Publication]:
        topic, _subject = parse_routed_key(message.key)
        observer = observers.get(topic)
        return observer(message.value) if observer is not None else []

    async def handle(message: Message) -> None:
        await guard.run(message, observe, publish)

    consume(app, sessions, "agentloop", metrics, handle)
    drop_moved_keys(app, settings, AGENTLOOP_INPUT, detector.forget, "agent-loop session(s)")

    async def agentloop_control() -> None:
        await control.run()

    async def agentloop_policies_loaded() -> None:
        await control.ready.wait()
        await publish(detector.policies_loaded())

    app.task(agentloop_control)
    app.task(agentloop_policies_loaded)
    return detector
