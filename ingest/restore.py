"""Re-publish the control plane from ClickHouse when its topics come back empty.

The embedded broker keeps topics in memory only (ARCHITECTURE §7), so restarting the
embedded stack empties `meterline.control` and `meterline.enforcement`. ClickHouse holds
every version of every control record and every decision, so ingest — the process that
owns ClickHouse — puts the latest of each back before gateways and processors read them.
Records keep their event ids, so the sink recognises them and stores nothing twice.
Against a durable Kafka the topics are not empty and nothing is re-published.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, Producer, TopicPartition

from ingest.decisions import active_decisions
from meterline.kafka import consumer_config, producer_config
from meterline.settings import Settings
from meterline.warehouse import SharedClient
from schemas.topics import CONTROL, ENFORCEMENT, enforcement_key

__all__ = ["RestoreReport", "restore_control_plane", "topic_is_empty"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreReport:
    control_records: int = 0
    enforcement_decisions: int = 0
    skipped_topics: tuple[str, ...] = ()


def topic_is_empty(settings: Settings, topic: str, timeout_s: float = 10.0) -> bool:
    consumer = Consumer(consumer_config(settings, None))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return True
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
            if high > low:
                return False
        return True
    finally:
        consumer.close()


def _latest_control_records(client: SharedClient) -> list[tuple[str, str]]:
    """(kafka key, payload) of the latest version of every live record."""
    rows = client.query_rows(
        f"SELECT record_type, record_id, payload FROM {client.database}.control_current "
        "WHERE NOT deleted AND payload != '' ORDER BY updated_at",
        {},
    )
    return [(f"{record_type}:{record_id}", payload) for record_type, record_id, payload in rows]


def restore_control_plane(
    settings: Settings, client: SharedClient, now: datetime | None = None
) -> RestoreReport:
    now = now or datetime.now(UTC)
    control_topic, enforcement_topic = settings.topic(CONTROL), settings.topic(ENFORCEMENT)
    skipped = []
    producer = Producer(producer_config(settings))
    control_count = decision_count = 0
    if topic_is_empty(settings, control_topic):
        for key, payload in _latest_control_records(client):
            producer.produce(control_topic, key=key.encode(), value=payload.encode())
            control_count += 1
    else:
        skipped.append(control_topic)
    if topic_is_empty(settings, enforcement_topic):
        for decision in active_decisions(client, now):
            key = enforcement_key(decision.source, decision.subject)
            producer.produce(enforcement_topic, key=key.encode(), value=decision.to_json())
            decision_count += 1
    else:
        skipped.append(enforcement_topic)
    undelivered = producer.flush(30)
    if undelivered:
        raise RuntimeError(
            f"{undelivered} control-plane record(s) were not delivered to Kafka; "
            "check the broker and restart ingest"
        )
    report = RestoreReport(control_count, decision_count, tuple(skipped))
    if control_count or decision_count:
        log.info(
            "restored the control plane from ClickHouse: %d control record(s), "
            "%d active enforcement decision(s)",
            control_count,
            decision_count,
        )
    return report
