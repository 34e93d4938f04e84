"""The drift agent: requests topic -> DriftReports (drift topic) and drift Anomalies.

Thin by design: windows and statistics live in `logic.DriftDetector`. Its own agent (and
consumer group member) beside the cost agent, reading raw bytes; what cannot be parsed
is skipped here (the cost agent dead-letters it with the reason: one dead letter per bad
message); a malformed prompt signature, which only drift reads, becomes a drift dead
letter. The loop always goes on.

State is process memory, not a Faust table, and a restart starts every scope over with
a new baseline window. That is acceptable: drift is a statistical signal, not money; a
lost half-window delays one comparison, and the first windows after a restart still
compare against each other. A changelog would cost a write per request for that, and
tansu's changelog recovery is unreliable anyway (ARCHITECTURE §7).

Like budgets, a scope's windows are complete only when one worker consumes every
partition (requests are keyed by key_id, a scope spans keys), as in the embedded setup.
Several workers would each judge a sample of the scope's traffic, which still works for
drift, with smaller windows.
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
)
from processors.metrics import ProcessorMetrics
from processors.streams import Guard, consume, raw_topic
from schemas.events.v1 import Anomaly, DriftReport, utc_now
from schemas.topics import ANOMALIES, DRIFT, REQUESTS

__all__ = ["AGENT_NAME", "register_drift_agent"]

log = logging.getLogger(__name__)

AGENT_NAME = "drift"
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

    def observe(message: Message) -> list[DriftReport | Anomaly]:
        event = request_from_payload(message.value)
        return detector.observe(event) if event is not None else []

    async def handle(message: Message) -> None:
        await guard.run(message, observe, publish)

    async def drift_close_due() -> None:
        # A scope that went quiet still gets its window closed and compared on time.
        await publish(detector.close_due(utc_now()))

    consume(app, raw_topic(app, settings, REQUESTS), AGENT_NAME, metrics, handle)
    app.timer(_CLOSE_DUE_EVERY_S, name="drift_close_due")(drift_close_due)
    return detector
