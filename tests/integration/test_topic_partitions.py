"""Topics get at least as many partitions as the largest consumer group (issue 13), on the
real broker: created so, or grown; compacted topics are never grown."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka.admin import AdminClient

from meterline.kafka import admin_config, create_topics, partition_problem
from meterline.settings import Settings
from schemas.topics import COMPACTED_TOPICS, TOPICS

pytestmark = pytest.mark.integration


def _partitions(settings: Settings) -> dict[str, int]:
    topics = AdminClient(admin_config(settings)).list_topics(timeout=10).topics
    return {name: len(topics[settings.topic(name)].partitions) for name in TOPICS}


def test_topics_are_created_with_enough_partitions_for_the_workers(
    make_settings, broker, caplog
) -> None:
    settings: Settings = make_settings(topic_partitions=2, ingest={"sink": {"workers": 4}})
    settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
    with caplog.at_level(logging.INFO, logger="meterline.kafka"):
        created = create_topics(settings)
    assert len(created) == len(TOPICS)
    assert set(_partitions(settings).values()) == {4}
    raised = [r for r in caplog.records if "raised from 2" in r.getMessage()]
    assert len(raised) == 1 and "to 4" in raised[0].getMessage()


def test_existing_topics_are_grown_but_compacted_ones_are_left_alone(
    make_settings, broker, caplog
) -> None:
    before: Settings = make_settings(broker, topic_partitions=1)  # creates them with 1
    assert set(_partitions(before).values()) == {1}
    after = before.model_copy(
        update={"processors": before.processors.model_copy(update={"workers": 3})}
    )
    with caplog.at_level(logging.INFO, logger="meterline.kafka"):
        assert create_topics(after) == []  # nothing new to create
    grown = _partitions(after)
    growing = [r.getMessage() for r in caplog.records if "growing" in r.getMessage()]
    assert len(growing) == len(TOPICS) - len(COMPACTED_TOPICS)
    assert not any(after.topic(name) + " " in line for name in COMPACTED_TOPICS for line in growing)
    for name in COMPACTED_TOPICS:
        assert grown[name] == 1
        assert partition_problem(after, name, 1) is None
    unsupported = [r for r in caplog.records if "cannot add partitions" in r.getMessage()]
    if unsupported:
        # The embedded broker (tansu) has no CreatePartitions: said once per topic, no
        # error, the topics unchanged. A real Kafka broker grows them (below).
        assert len(unsupported) == len(growing)
        assert all(grown[n] == 1 for n in TOPICS)
        return
    for name, count in grown.items():
        assert count == (1 if name in COMPACTED_TOPICS else 3), name
        assert partition_problem(after, name, count) is None
    # Idempotent: a second worker starting at the same time changes nothing.
    assert create_topics(after) == []
    assert _partitions(after) == grown
