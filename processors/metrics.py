"""Counters of the processors worker, exposed as Prometheus text (GET /metrics).

prometheus_client with one `CollectorRegistry` per `ProcessorMetrics` (not the global
registry), so every app, and every test, counts on its own. Plain Python, no Faust:
agents bump the counters, the web view renders them. The `_created` series are turned
off so /metrics shows the same series as before the library took over; values are floats
(`2.0`) and labels sorted by name, as prometheus_client writes them. The gateway keeps
its own hand-written counters for a measured hot-path reason (gateway/metrics.py).
"""

from __future__ import annotations

import collections
from decimal import Decimal

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

__all__ = ["PROMETHEUS_CONTENT_TYPE", "ProcessorMetrics"]

# The format generate_latest writes; without the library's "; charset=utf-8", which
# aiohttp (under Faust's web view) refuses inside a content type.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"
_PREFIX = "meterline_processors_"
_OTHER = "__other__"

prometheus_client.disable_created_metrics()


class ProcessorMetrics:
    """The worker's counters; one instance (and registry) per worker process.

    Model names come from client traffic, so the unpriced-by-model series is capped:
    a flood of invented model names must not grow the metrics without bound.
    """

    def __init__(self, max_model_labels: int = 500) -> None:
        self.registry = CollectorRegistry()
        self._events = self._counter("events_processed", "Input events handled.", "agent")
        self._costs = self._counter("costs_emitted", "CostEvents sent to the costs topic.")
        self._cost_usd = self._counter("cost_usd", "Sum of total_cost emitted, USD.")
        self._recosted = self._counter("recosted", "Stored requests priced again (cost lost).")
        self._unpriced = self._counter(
            "unpriced", "CostEvents with priced=false, by model.", "model"
        )
        self._dead_letters = self._counter(
            "dead_letters", "Messages sent to the dead-letter topic.", "stage"
        )
        # outcome: sent|failed|suppressed|dropped, category: budget|enforcement|anomaly
        self._alerts = self._counter(
            "alerts", "Alert deliveries and alerts held back.", "outcome", "category"
        )
        # Per input topic (a bounded set: the worker's own subscriptions). Messages not
        # handled yet on this worker's partitions, and how old the oldest record of the
        # last committed batch was when it was committed: the stages' delay end to end.
        self._lag = Gauge(
            _PREFIX + "consumer_lag_messages",
            "Messages behind the end of the worker's partitions, by input topic.",
            ["topic"],
            registry=self.registry,
        )
        self._age = Gauge(
            _PREFIX + "batch_age_seconds",
            "Age of the oldest record of the last committed batch, by input topic.",
            ["topic"],
            registry=self.registry,
        )
        self._peer_items = self._counter(
            "llmjacking_peer_items",
            "Learned peer items taken from other processors workers (llmjacking-peers).",
        )
        self._keys_taken_over = self._counter(
            "llmjacking_keys_taken_over",
            "LLMjacking keys whose learned normal came with a partition this worker gained "
            "(llmjacking-keys).",
        )
        self._unpriced_models: set[str] = set()
        self._max_model_labels = max_model_labels

    def _counter(self, name: str, help_text: str, *labels: str) -> Counter:
        return Counter(_PREFIX + name, help_text, labels, registry=self.registry)

    def event_processed(self, agent: str, count: int = 1) -> None:
        self._events.labels(agent).inc(count)

    def cost_emitted(self, total_cost: Decimal, priced: bool, model: str | None) -> None:
        self._costs.inc()
        # A float, as Prometheus holds it; a counter refuses to go down (ValueError).
        self._cost_usd.inc(max(float(total_cost), 0.0))
        if not priced:
            label = model or ""
            if label not in self._unpriced_models:
                if len(self._unpriced_models) >= self._max_model_labels:
                    label = _OTHER
                self._unpriced_models.add(label)
            self._unpriced.labels(label).inc()

    def consumer_lag(self, lag_by_topic: dict[str, int]) -> None:
        for topic, lag in lag_by_topic.items():
            self._lag.labels(topic).set(max(lag, 0))

    def batch_committed(self, age_s_by_topic: dict[str, float]) -> None:
        for topic, age_s in age_s_by_topic.items():
            self._age.labels(topic).set(max(age_s, 0.0))

    def recosted(self, count: int) -> None:
        self._recosted.inc(max(count, 0))

    def peer_items(self, count: int) -> None:
        self._peer_items.inc(max(count, 0))

    def keys_taken_over(self, count: int) -> None:
        self._keys_taken_over.inc(max(count, 0))

    def dead_letter(self, stage: str) -> None:
        self._dead_letters.labels(stage).inc()

    def alert(self, outcome: str, category: str) -> None:
        self._alerts.labels(outcome, category).inc()

    @property
    def unpriced_by_model(self) -> collections.Counter[str]:
        return collections.Counter({k[0]: n for k, n in _series(self._unpriced).items()})

    @property
    def alerts(self) -> collections.Counter[tuple[str, str]]:
        return collections.Counter({(k[0], k[1]): n for k, n in _series(self._alerts).items()})

    def render(self) -> str:
        return generate_latest(self.registry).decode()


def _series(counter: Counter) -> dict[tuple[str, ...], int]:
    """A labelled counter's `_total` samples, keyed by label values (for tests, health)."""
    return {
        tuple(sample.labels.values()): int(sample.value)
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
