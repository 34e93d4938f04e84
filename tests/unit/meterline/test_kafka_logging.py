"""librdkafka's log lines, thinned: the first of each (level, facility, client) passes,
repeats within the window are dropped, and the first one after it says how many were."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from meterline.kafka import RepeatFilter, librdkafka_logger

PRODUCER = "rdkafka#producer-1"
CONSUMER = "rdkafka#consumer-2"


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [self.format(record) for record in self.records]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def captured(clock: FakeClock) -> Iterator[tuple[logging.Logger, Collect]]:
    logger = logging.getLogger(f"test.librdkafka.{id(clock)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addFilter(RepeatFilter(window_s=30.0, clock=clock))
    handler = Collect()
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)
    logger.filters.clear()


def rdkafka(logger: logging.Logger, facility: str, client: str, text: str, level=logging.ERROR):
    """What confluent-kafka calls for each librdkafka log line."""
    logger.log(level, "%s [%s] %s", facility, client, text)


def test_repeats_within_the_window_are_dropped_and_counted_on_the_next_line(
    clock, captured
) -> None:
    logger, handler = captured
    down = "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
    rdkafka(logger, "FAIL", PRODUCER, down)
    for step in range(1, 6):  # the text may differ: still the same kind of line
        clock.now = 500.0 + step * 5.9
        rdkafka(logger, "FAIL", PRODUCER, f"{down} (after {step}ms in state CONNECT)")
    assert handler.lines == [f"ERROR {logger.name}: FAIL [{PRODUCER}] {down}"]

    clock.now = 529.9
    rdkafka(logger, "FAIL", PRODUCER, down)
    assert len(handler.records) == 1  # still inside the window

    clock.now = 530.0
    rdkafka(logger, "FAIL", PRODUCER, "1/1 brokers are down (100% of them)")
    assert len(handler.records) == 2
    assert handler.lines[1] == (
        f"ERROR {logger.name}: FAIL [{PRODUCER}] 1/1 brokers are down (100% of them) "
        "(6 similar lines in the last 30s)"
    )
    assert handler.records[1].levelno == logging.ERROR


def test_the_count_starts_again_after_each_summary(clock, captured) -> None:
    logger, handler = captured
    rdkafka(logger, "FAIL", PRODUCER, "a")
    clock.now = 510.0
    rdkafka(logger, "FAIL", PRODUCER, "b")
    clock.now = 530.0
    rdkafka(logger, "FAIL", PRODUCER, "c")  # passes, sums up "b"
    clock.now = 545.0
    rdkafka(logger, "FAIL", PRODUCER, "d")
    rdkafka(logger, "FAIL", PRODUCER, "e")
    clock.now = 572.0
    rdkafka(logger, "FAIL", PRODUCER, "f")  # the window runs from "c", sums up "d" and "e"
    clock.now = 700.0
    rdkafka(logger, "FAIL", PRODUCER, "g")  # nothing suppressed since "f": no suffix
    assert [record.getMessage() for record in handler.records] == [
        f"FAIL [{PRODUCER}] a",
        f"FAIL [{PRODUCER}] c (1 similar lines in the last 30s)",
        f"FAIL [{PRODUCER}] f (2 similar lines in the last 42s)",
        f"FAIL [{PRODUCER}] g",
    ]


def test_clients_facilities_and_levels_are_counted_apart(clock, captured) -> None:
    logger, handler = captured
    kinds = [
        ("FAIL", PRODUCER, logging.ERROR),
        ("FAIL", CONSUMER, logging.ERROR),
        ("REQTMOUT", PRODUCER, logging.ERROR),
        ("FAIL", PRODUCER, logging.WARNING),
    ]
    for _ in range(3):
        for facility, client, level in kinds:
            rdkafka(logger, facility, client, "broker down", level=level)
        clock.now += 1.0
    passed = [(r.args[0], r.args[1], r.levelno) for r in handler.records]  # type: ignore[index]
    assert passed == kinds  # each kind's first line, and only that

    clock.now = 529.0
    rdkafka(logger, "REQTMOUT", PRODUCER, "timed out")  # still in its own window
    assert len(handler.records) == len(kinds)
    clock.now = 530.0
    rdkafka(logger, "FAIL", CONSUMER, "broker down")
    assert len(handler.records) == len(kinds) + 1
    assert handler.records[-1].getMessage() == (
        f"FAIL [{CONSUMER}] broker down (2 similar lines in the last 30s)"
    )


def test_the_librdkafka_logger_has_one_filter_however_often_it_is_asked_for() -> None:
    logger = librdkafka_logger()
    assert librdkafka_logger() is logger
    assert sum(isinstance(f, RepeatFilter) for f in logger.filters) == 1
