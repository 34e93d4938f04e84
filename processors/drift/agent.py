"""The drift agent: requests topic -> DriftReports (drift topic) and drift Anomalies.

Thin by design: windows and statistics live in `logic.DriftDetector`. Two stages:

- routing (requests topic): requests are keyed by key_id, but a drift scope (app x model)
  spans keys. Each request is sent again, the same bytes, to the internal drift-input
  topic, keyed by its scope and on the partition `partition_for(scope)`, so with several
  workers one of them holds each scope's windows (the same reports as one worker). What
  cannot be parsed is skipped (the cost agent dead-letters it with the reason: one dead
  letter per bad message); a malformed prompt signature, which only drift reads, becomes
  a drift dead letter here.
- windows (drift-input topic): each request into its scope's window. A worker that loses
  drift-input partitions drops their scopes (their new owner starts them over).

State is process memory, not a Faust table, and a restart starts every scope over with
a new baseline window. That is acceptable: drift is a statistical signal, not money; a
lost half-window delays one comparison, and the first windows after a restart still
compare against each other. A changelog would cost a write per request for that, and
tansu's changelog recovery is unreliable anyway (ARCHITECTURE §7).
"""

from __future__ import annotations

import logging

import faust
from faust.types import Message

from meterline.settings import Settings
from processors.dlq import DeadLetterPublisher
from processors.drift.logic import (
    STAGE,
    DriftDetector,
    InvalidSignature,
    request_from_payload,
    scope_of,
)
from processors.errors import parse_event
from processors.metrics import ProcessorMetrics
from processors.streams import Guard, consume, drop_moved_keys, raw_topic
from schemas.events.v1 import Anomaly, DriftReport, RequestEvent, utc_now
from schemas.topics import ANOMALIES, DRIFT, DRIFT_INPUT, REQUESTS, partition_for

__all__ = ["AGENT_NAME", "ROUTE_NAME", "register_drift_agent"]

log = logging.getLogger(__name__)

AGENT_NAME = "drift"
ROUTE_NAME = "drift_route"
_CLOSE_DUE_EVERY_S = 5.0


def register_drift_agent(
    app: faust.App,
    settings: Settings,
    metrics: ProcessorMetrics,
    dead_letters: DeadLetterPublisher,
) -> DriftDetector:
    outputs = {name: raw_topic(app, settings, name) for name in (DRIFT, ANOMALIES)}
    detector = DriftDetector(settings.processors.drift)
    guard = Guard(dead_letters, STAGE, log, "drift agent", (InvalidSignature,))

    async def publish(results: list[DriftReport | Anomaly]) -> None:
        for result in results:
            if isinstance(result, DriftReport):
                await outputs[DRIFT].send(key=result.scope.encode(), value=result.to_json())
            else:
                await outputs[ANOMALIES].send(key=result.subject.encode(), value=result.to_json())

    drift_input = raw_topic(app, settings, DRIFT_INPUT)
    partitions = settings.effective_topic_partitions  # every worker's settings agree

    def scope_route(message: Message) -> list[tuple[str, bytes]]:
        event = request_from_payload(message.value)
        return [(scope_of(event), message.value)] if event is not None and message.value else []

    async def route(routes: list[tuple[str, bytes]]) -> None:
        for scope, value in routes:
            partition = partition_for(scope, partitions)
            await drift_input.send(key=scope.encode(), value=value, partition=partition)

    async def handle_request(message: Message) -> None:
        await guard.run(message, scope_route, route)

    def observe(message: Message) -> list[DriftReport | Anomaly]:
        event = parse_event(RequestEvent, message.value)  # checked when it was routed
        return detector.observe(event) if event is not None else []

    async def handle(message: Message) -> None:
        await guard.run(message, observe, publish)

    async def drift_close_due() -> None:
        # A scope that went quiet still gets its window closed and compared on time.
        await publish(detector.close_due(utc_now()))

    consume(app, raw_topic(app, settings, REQUESTS), ROUTE_NAME, metrics, handle_request)
    consume(app, drift_input, AGENT_NAME, metrics, handle)
    drop_moved_keys(app, settings, DRIFT_INPUT, detector.forget, "drift scope(s)")
    app.timer(_CLOSE_DUE_EVERY_S, name="drift_close_due")(drift_close_due)
    return detector
