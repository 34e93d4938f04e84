"""The single Faust app of the processors worker, built from Settings.

Faust runs the worker: its lifecycle and signals, timers and tasks, the web views. The
stages' input comes from one batch consumer in the consumer group `processors.app_id`
(processors/batches.py says why not Faust's agents) and their output goes out through
one producer (processors/outputs.py). Tuned for the embedded tansu broker as well as
Apache Kafka (ARCHITECTURE §7): no transactions (at-least-once, sinks deduplicate on
event_id), session timeout from settings (tansu's first group join waits about half of
it), and our topics are never declared by Faust: `meterline.kafka.create_topics` owns
them.
"""

from __future__ import annotations

import asyncio

import faust
from faust.app.base import BootStrategy
from faust.web import Request, Response, View

from meterline.settings import Settings
from processors.agentloop.agent import register_agentloop_agents
from processors.alerts.agent import register_alert_agents
from processors.autocreate import disable_topic_auto_creation
from processors.batches import BatchLoop
from processors.budgets.agent import register_budget_agent
from processors.cost.agent import register_cost_agent
from processors.dlq import DeadLetterPublisher
from processors.drift.agent import register_drift_agent
from processors.health import ConsumptionHealth, probe_topics
from processors.llmjacking.agent import register_llmjacking_agent
from processors.metrics import PROMETHEUS_CONTENT_TYPE, ProcessorMetrics
from processors.spans.agent import register_span_cost_agent
from processors.streams import pipeline, raw_topic
from schemas.topics import DLQ

__all__ = ["create_app"]

_HEALTH_PROBE_INTERVAL_S = 2.0


def create_app(settings: Settings, metrics: ProcessorMetrics | None = None) -> faust.App:
    metrics = metrics or ProcessorMetrics()
    disable_topic_auto_creation()
    datadir = settings.data_dir / "processors"
    datadir.mkdir(parents=True, exist_ok=True)  # Faust only creates the last level
    app = faust.App(
        settings.processors.app_id,
        broker=[f"kafka://{host.strip()}" for host in settings.bootstrap.split(",")],
        store="memory://",
        processing_guarantee="at_least_once",
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka_session_timeout_ms / 1000 / 3,
        topic_partitions=settings.effective_topic_partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        datadir=str(datadir),
        web_enabled=True,
        web_host=settings.host,
        web_port=settings.processors_port,
        autodiscover=False,
    )
    # Faust's own consumer and producer stay off: batches.py and outputs.py do that work.
    app.boot_strategy = BootStrategy(app, enable_kafka=False)
    dead_letters = DeadLetterPublisher(raw_topic(app, settings, DLQ), metrics)
    register_cost_agent(app, settings, metrics, dead_letters)
    register_budget_agent(app, settings, metrics, dead_letters)
    register_span_cost_agent(app, settings, metrics, dead_letters)
    register_alert_agents(app, settings, metrics, dead_letters)
    register_drift_agent(app, settings, metrics, dead_letters)
    register_llmjacking_agent(app, settings, metrics, dead_letters)
    register_agentloop_agents(app, settings, metrics, dead_letters)
    batches = BatchLoop(settings, pipeline(app, settings), metrics)
    app.service(batches)
    _register_views(app, settings, metrics, batches)
    return app


def _register_views(
    app: faust.App, settings: Settings, metrics: ProcessorMetrics, batches: BatchLoop
) -> None:
    health = ConsumptionHealth()

    async def probe() -> None:
        result = await asyncio.get_running_loop().run_in_executor(None, probe_topics, settings)
        health.update(result, len(batches.assigned))

    app.task(probe)  # at start, then every interval
    app.timer(_HEALTH_PROBE_INTERVAL_S, name="health_probe")(probe)

    @app.page("/healthz")
    async def healthz(self: View, request: Request) -> Response:
        health.update(assigned_partitions=len(batches.assigned))
        ok, body = health.report()
        body.update(app_id=app.conf.id, assigned_partitions=health.assigned_partitions)
        return self.json(body, status=200 if ok else 503)

    @app.page("/metrics")
    async def prometheus(self: View, request: Request) -> Response:
        return self.text(metrics.render(), content_type=PROMETHEUS_CONTENT_TYPE)
