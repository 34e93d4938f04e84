"""Read what the pipeline concluded, straight from its topics, from the beginning.

Anomalies, enforcement decisions, requests and costs are consumed with confluent-kafka on
assigned partitions (no consumer group, nothing committed), so an evaluation never
disturbs the services and needs nothing but the broker. The embedded broker's end offsets
are unreliable (ARCHITECTURE §7), so reading stops once the topics have been quiet for a
moment instead of at the high watermark.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from meterline.evaluate.scoring import Detection, ObservedRequest
from meterline.kafka import consumer_config
from meterline.settings import Settings
from schemas.subjects import key_subject, session_subject

__all__ = ["Collected", "collect", "read_topics"]


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def read_topics(
    settings: Settings, names: list[str], idle_s: float = 2.0, max_s: float = 60.0
) -> dict[str, list[dict[str, Any]]]:
    """Every JSON record of the named topics (base names), tombstones and garbage left out."""
    consumer = Consumer(consumer_config(settings, None, **{"enable.partition.eof": False}))
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    by_topic = {settings.topic(name): name for name in names}
    try:
        metadata = consumer.list_topics(timeout=10)
        consumer.assign(
            [
                TopicPartition(topic, partition, OFFSET_BEGINNING)
                for topic in by_topic
                if topic in metadata.topics
                for partition in metadata.topics[topic].partitions
            ]
        )
        deadline = time.monotonic() + max_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < idle_s:
            batch = consumer.consume(1000, timeout=0.2)
            if batch:
                quiet_since = time.monotonic()
            for message in batch:
                if message.error() or message.value() is None:
                    continue
                try:
                    value = orjson.loads(message.value())
                except orjson.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    records[by_topic[message.topic()]].append(value)
    finally:
        consumer.close()
    return records


class Collected:
    """The detections and observed requests of one run, in the scorer's terms."""

    def __init__(self, records: dict[str, list[dict[str, Any]]]) -> None:
        self.detections: list[Detection] = []
        for anomaly in records.get("anomalies", []):
            ts = _epoch(anomaly.get("ts"))
            if ts is not None and anomaly.get("kind") and anomaly.get("subject"):
                evidence = anomaly.get("evidence")
                trigger = _epoch(evidence.get("last_seen")) if isinstance(evidence, dict) else None
                self.detections.append(
                    Detection(anomaly["kind"], anomaly["subject"], ts, trigger_ts=trigger)
                )
        for decision in records.get("enforcement", []):
            ts = _epoch(decision.get("decided_at") or decision.get("ts"))
            if ts is None or decision.get("action") != "block":
                continue
            self.detections.append(
                Detection(str(decision.get("source")), str(decision.get("subject")), ts, True)
            )
        costs: dict[str, Decimal] = {}
        for cost in records.get("costs", []):
            try:
                costs[str(cost.get("request_id"))] = Decimal(str(cost.get("total_cost", 0)))
            except InvalidOperation:
                continue
        self.requests: list[ObservedRequest] = []
        for event in records.get("requests", []):
            ts = _epoch(event.get("ts_start"))
            if ts is None:
                continue
            subjects = [key_subject(event["key_id"])] if event.get("key_id") else []
            if event.get("session_id"):
                subjects.append(session_subject(event["session_id"]))
            self.requests.append(
                ObservedRequest(
                    tuple(subjects), ts, costs.get(str(event.get("request_id")), Decimal(0))
                )
            )
        self.raw = records


def collect(settings: Settings, idle_s: float = 2.0) -> Collected:
    return Collected(
        read_topics(settings, ["anomalies", "enforcement", "requests", "costs"], idle_s)
    )
