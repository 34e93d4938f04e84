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
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, Producer, TopicPartition

from ingest.controlplane.decisions import active_decisions
from meterline.kafka import consumer_config, producer_config
from meterline.settings import Settings
from meterline.warehouse import SharedClient
from schemas.topics import CONTROL, ENFORCEMENT, control_key, enforcement_key

__all__ = ["ControlPlaneWatch", "RestoreReport", "restore_control_plane", "topic_is_empty"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreReport:
    control_records: int = 0
    enforcement_decisions: int = 0
    skipped_topics: tuple[str, ...] = ()


def topic_is_empty(settings: Settings, topic: str, timeout_s: float = 10.0) -> bool | None:
    """True when the topic holds no record; None when it does not exist (yet)."""
    consumer = Consumer(consumer_config(settings, None))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return None
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
    return [
        (control_key(record_type, record_id), payload) for record_type, record_id, payload in rows
    ]


def restore_control_plane(
    settings: Settings,
    client: SharedClient,
    now: datetime | None = None,
    *,
    missing_is_empty: bool = True,
) -> RestoreReport:
    """Re-publish each control topic that is empty; with `missing_is_empty=False` a topic
    that does not exist yet is left for a later call (it is being recreated)."""
    now = now or datetime.now(UTC)
    control_topic, enforcement_topic = settings.topic(CONTROL), settings.topic(ENFORCEMENT)
    skipped = []
    records: list[tuple[str, str, bytes]] = []
    control_count = decision_count = 0
    if _restorable(settings, control_topic, missing_is_empty):
        for key, payload in _latest_control_records(client):
            records.append((control_topic, key, payload.encode()))
            control_count += 1
    else:
        skipped.append(control_topic)
    if _restorable(settings, enforcement_topic, missing_is_empty):
        for decision in active_decisions(client, now):
            key = enforcement_key(decision.source, decision.subject)
            records.append((enforcement_topic, key, decision.to_json()))
            decision_count += 1
    else:
        skipped.append(enforcement_topic)
    if records:
        _publish(settings, records)
    report = RestoreReport(control_count, decision_count, tuple(skipped))
    if control_count or decision_count:
        log.info(
            "restored the control plane from ClickHouse: %d control record(s), "
            "%d active enforcement decision(s)",
            control_count,
            decision_count,
        )
    return report


def _restorable(settings: Settings, topic: str, missing_is_empty: bool) -> bool:
    empty = topic_is_empty(settings, topic)
    return bool(empty) or (empty is None and missing_is_empty)


def _publish(settings: Settings, records: list[tuple[str, str, bytes]]) -> None:
    producer = Producer(producer_config(settings))
    for topic, key, value in records:
        producer.produce(topic, key=key.encode(), value=value)
    undelivered = producer.flush(30)
    if undelivered:
        raise RuntimeError(
            f"{undelivered} control-plane record(s) were not delivered to Kafka; "
            "check the broker and restart ingest"
        )


class ControlPlaneWatch:
    """While ingest runs, restore the control plane whenever its topics come back empty:
    the embedded broker restarted (memory storage), and a gateway started after that
    must still know every key, budget, policy and active block.

    A change made through the admin API in the few seconds between the broker's restart
    and the next check would make the topic non-empty and hold the restore back; the
    embedded supervisor recreates the topics at once, so that window stays short.
    """

    def __init__(self, settings: Settings, client: SharedClient, interval_s: float = 2.0):
        self._settings = settings
        self._client = client
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="control-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                restore_control_plane(self._settings, self._client, missing_is_empty=False)
            except Exception as exc:  # broker down or restarting: the next round retries
                log.info("control-plane check failed (%s); retrying", exc)
