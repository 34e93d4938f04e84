"""Kafka plumbing shared by every service: client configs and explicit topic creation."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from meterline.settings import Settings
from schemas.topics import COMPACTED_TOPICS, TOPICS

__all__ = ["consumer_config", "create_topics", "producer_config", "wait_for_broker"]


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap,
        "linger.ms": 5,
        "compression.type": "none",
        "enable.idempotence": False,  # not supported by the embedded broker (ARCHITECTURE §7)
        "acks": "all",
        "message.timeout.ms": settings.emitter_delivery_timeout_ms,
        "socket.keepalive.enable": True,
        "reconnect.backoff.max.ms": 1000,
    }
    config.update(overrides)
    return config


def consumer_config(settings: Settings, group_id: str | None, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "reconnect.backoff.max.ms": 1000,
    }
    if group_id is not None:
        config["group.id"] = group_id
    else:
        # Assign-only readers (compacted views) still need a group id for librdkafka.
        config["group.id"] = "meterline-unused"
    config.update(overrides)
    return config


def wait_for_broker(settings: Settings, timeout_s: float = 30.0) -> None:
    """Block until the broker answers a metadata request, or raise with advice."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=2)
            return
        except KafkaException as exc:
            last_error = exc
            time.sleep(0.2)
    raise RuntimeError(
        f"Kafka at {settings.bootstrap} did not answer within {timeout_s:.0f}s ({last_error}). "
        "Start it, or unset METERLINE_KAFKA_BOOTSTRAP to use the embedded broker."
    )


def create_topics(settings: Settings, names: Iterable[str] = TOPICS) -> list[str]:
    """Create the missing topics explicitly (never auto-creation); return the created ones."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = []
    for name in names:
        full = settings.topic(name)
        if full in existing:
            continue
        config = {"cleanup.policy": "compact"} if name in COMPACTED_TOPICS else {}
        wanted.append(
            NewTopic(
                full, num_partitions=settings.topic_partitions, replication_factor=1, config=config
            )
        )
    if not wanted:
        return []
    created = []
    for topic, future in admin.create_topics(wanted, request_timeout=15).items():
        try:
            future.result()
            created.append(topic)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
