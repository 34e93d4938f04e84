"""The alert agents: budgets, enforcement and anomalies topics -> Slack-compatible webhooks.

Thin by design: `logic.Alerter` decides what to say and when (crossings, new decisions,
de-duplication), `slack.py` renders it, and `delivery.WebhookSender` sends it from its
own task. An agent only enqueues, so a slow or failing webhook never slows the stream.
Values are read as raw bytes; what the logic rejects becomes a dead letter.

Every worker consuming these topics in one consumer group alerts once per record; with
no webhook configured the agents are not registered at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import faust
import orjson
from faust.types import Message

from meterline.settings import Settings
from processors.alerts.delivery import Notification, RetryPolicy, WebhookSender
from processors.alerts.logic import STAGE, Alerter, Outcome, RejectedMessage
from processors.alerts.slack import slack_message
from processors.dlq import DeadLetterPublisher
from processors.metrics import ProcessorMetrics
from processors.streams import Guard, consume, raw_topic
from schemas.topics import ANOMALIES, BUDGETS, ENFORCEMENT

__all__ = ["register_alert_agents"]

log = logging.getLogger(__name__)


def register_alert_agents(
    app: faust.App,
    settings: Settings,
    metrics: ProcessorMetrics,
    dead_letters: DeadLetterPublisher,
) -> WebhookSender | None:
    config = settings.processors.alert
    if not config.webhooks and not config.security_webhooks:
        return None
    alerter = Alerter(config, dashboard_url=settings.resolved_dashboard_url)
    sender = WebhookSender(
        config.webhooks,
        config.security_webhooks,
        metrics,
        timeout_s=config.timeout_s,
        policy=RetryPolicy(max_retries=config.max_retries),
        queue_size=config.queue_size,
    )

    guard = Guard(dead_letters, STAGE, log, "alerts", (RejectedMessage,))

    async def deliver(outcome: Outcome) -> None:
        for alert in outcome.suppressed:
            metrics.alert("suppressed", alert.category)
        for notice in outcome.notices:
            body = orjson.dumps(slack_message(notice.alert, notice.suppressed_before))
            sender.submit(Notification(body, notice.alert.category, notice.alert.security))

    def on_budget(message: Message) -> Outcome:
        return alerter.on_budget_state(message.key, message.value)

    def on_enforcement(message: Message) -> Outcome:
        written_at = datetime.fromtimestamp(message.timestamp, UTC)
        return alerter.on_decision(message.key, message.value, written_at)

    def on_anomaly(message: Message) -> Outcome:
        return alerter.on_anomaly(message.value)

    def register(topic: str, react: Callable[[Message], Outcome]) -> None:
        async def handle(message: Message) -> None:
            await guard.run(message, react, deliver)

        consume(app, raw_topic(app, settings, topic), f"alerts_{topic}", metrics, handle)

    register(BUDGETS, on_budget)
    register(ENFORCEMENT, on_enforcement)
    register(ANOMALIES, on_anomaly)

    async def alert_delivery() -> None:
        await sender.run()

    app.task(alert_delivery)
    return sender
