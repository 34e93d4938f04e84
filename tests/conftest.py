"""Shared fixtures: free ports, a real tansu broker, settings with unique topic prefixes,
and the one in-process ClickHouse engine this test process may open (ARCHITECTURE §6)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterline import ports
from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import create_topics
from meterline.settings import Settings, merged


def _xdist_lane() -> tuple[int, int]:
    """This test process's slice of the port range when pytest-xdist runs several."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return int(worker.removeprefix("gw") or 0), max(count, 1)


def free_port(span: int = 1) -> int:
    """A free port (and the `span - 1` after it) for a service this test starts."""
    lane, lanes = _xdist_lane()
    return ports.free_port(span, lane=lane, lanes=lanes)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One real broker for the session; tests isolate themselves by topic prefix."""
    instance = EmbeddedBroker(free_port())
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings for one test: its own data dir, and (given a broker) its own topics.
    Overrides are nested like Settings (`processors={"drift": {"window_s": 0}}`) and merged
    section by section into these defaults."""

    def factory(broker: EmbeddedBroker | None = None, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": tmp_path / "data",
            "topic_prefix": unique("t") + ".",
            "topic_partitions": 2,
            "clickhouse_database": unique("db_"),
            "admin_token": "test-admin-token",
            "processors": {
                "app_id": unique("procs-"),
                # Component tests run no ingest: budgets must not wait for its read API
                # or its sink.
                "budget": {"reconcile_timeout_s": 0.0, "sink_wait_s": 0.0},
            },
            "ingest": {"sink": {"group_id": unique("sink-")}},
        }
        if broker is not None:
            values["kafka_bootstrap"] = broker.bootstrap
        settings = Settings(**merged(values, overrides))
        if broker is not None:
            create_topics(settings)
        return settings

    return factory


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The single embedded ClickHouse engine of this test process; tests use own databases."""
    return f"chdb://{tmp_path_factory.mktemp('clickhouse').resolve()}"
