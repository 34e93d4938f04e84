"""Kafka plumbing shared by every service: client configs and explicit topic creation.

Every librdkafka client logs through Python logging (`meterline.librdkafka`), never raw
to stderr, and a broker outage logs each kind of complaint once per `REPEAT_WINDOW_S`
per client, with a count, instead of a line per reconnect attempt. No client may
auto-create a topic: the embedded broker would create it with its own partition count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from meterline.settings import Settings
from schemas.topics import COMPACTED_TOPICS, TOPIC_CONFIGS, TOPICS

__all__ = [
    "METADATA_REFRESH_MS",
    "RECORD_ERRORS",
    "REPEAT_WINDOW_S",
    "RepeatFilter",
    "admin_config",
    "consumer_config",
    "create_topics",
    "grow_topics",
    "install_repeat_filter",
    "is_record_error",
    "librdkafka_logger",
    "partition_problem",
    "producer_config",
    "wait_for_broker",
]

REPEAT_WINDOW_S = 30.0

log = logging.getLogger(__name__)

# Produce errors about the record itself: no retry can fix them, so a producer must set
# the record aside (dead-letter it, refuse it with the reason) rather than retry it and
# block what comes after. Every other produce error is the broker's: keep and retry.
RECORD_ERRORS: frozenset[int] = frozenset(
    code
    for code in (
        KafkaError.MSG_SIZE_TOO_LARGE,  # broker limit, and librdkafka's local size check
        getattr(KafkaError, "_MSG_SIZE_TOO_LARGE", None),  # older librdkafka spelling
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,  # CRC / corrupt record
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError.POLICY_VIOLATION,  # a broker policy refuses this record
        KafkaError._BAD_MSG,
        KafkaError._INVALID_ARG,
        KafkaError._KEY_SERIALIZATION,
        KafkaError._VALUE_SERIALIZATION,
    )
    if code is not None
)


def is_record_error(error: KafkaError) -> bool:
    """True when this record can never be produced (see RECORD_ERRORS)."""
    return error.code() in RECORD_ERRORS


class RepeatFilter(logging.Filter):
    """Passes the first record of each kind and then one per window; a suppressed run is
    summed up on the next record of that kind that passes.

    A kind is the logger, level and message template; for librdkafka, which logs every
    line as `log(level, "%s [%s] %s", facility, client, text)`, also facility and client.
    The same filter tames aiokafka under Faust (`install_repeat_filter`), which logs each
    failed fetch and metadata attempt of an outage, ten times a second.
    """

    def __init__(
        self, window_s: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[object, ...], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        kind: tuple[object, ...] = (record.name, record.levelno, record.msg)
        if record.msg == _LIBRDKAFKA_TEMPLATE:
            kind += tuple(args[:2])
        now = self._clock()
        with self._lock:
            last, suppressed = self._seen.get(kind, (float("-inf"), 0))
            if now - last < self._window_s:
                self._seen[kind] = (last, suppressed + 1)
                return False
            self._seen[kind] = (now, 0)
        if suppressed and isinstance(record.args, tuple):
            record.msg = f"{record.msg} ({suppressed} similar lines in the last %.0fs)"
            record.args = (*args, now - last)
        return True


_LIBRDKAFKA_TEMPLATE = "%s [%s] %s"


def install_repeat_filter(prefix: str, window_s: float = REPEAT_WINDOW_S) -> None:
    """Rate-limit every logger named `prefix` or `prefix.*` that exists now (a logger's
    filters see only its own records, not its children's)."""
    repeat = RepeatFilter(window_s)
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] == prefix]
    for name in {prefix, *names}:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(repeat)


def librdkafka_logger() -> logging.Logger:
    logger = logging.getLogger("meterline.librdkafka")
    if not any(isinstance(f, RepeatFilter) for f in logger.filters):
        logger.addFilter(RepeatFilter())
    return logger


def admin_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap, "logger": librdkafka_logger()}


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap,
        "linger.ms": 5,
        "compression.type": "none",
        "enable.idempotence": False,  # not supported by the embedded broker (ARCHITECTURE §7)
        "acks": "all",
        "message.timeout.ms": settings.gateway.emitter.delivery_timeout_ms,
        "socket.keepalive.enable": True,
        "reconnect.backoff.max.ms": 1000,
        "allow.auto.create.topics": False,
        "logger": librdkafka_logger(),
    }
    config.update(overrides)
    return config


# A subscribed topic that is missing when a consumer (re)joins its group is only looked for
# again at the next metadata refresh: 5 minutes by default. After a broker restart
# (the embedded broker keeps nothing) the topics are created again moments after the
# consumers rejoin, so a consumer could miss one (spans, budget-spend) for minutes.
METADATA_REFRESH_MS = 5_000


def consumer_config(settings: Settings, group_id: str | None, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS,
        "reconnect.backoff.max.ms": 1000,
        "allow.auto.create.topics": False,
        "logger": librdkafka_logger(),
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
    admin = AdminClient(admin_config(settings))
    try:
        Retrying(
            retry=retry_if_exception_type(KafkaException),
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(0.2),
            reraise=True,
        )(admin.list_topics, timeout=2)
    except KafkaException as exc:
        raise RuntimeError(
            f"Kafka at {settings.bootstrap} did not answer within {timeout_s:.0f}s ({exc}). "
            "Start it, or unset METERLINE_KAFKA_BOOTSTRAP to use the embedded broker."
        ) from exc


def _partitions_note(settings: Settings) -> None:
    if settings.effective_topic_partitions > settings.topic_partitions:
        log.info(
            "topic partitions raised from %d (METERLINE_TOPIC_PARTITIONS) to %d: the largest "
            "consumer group has %d members (processors.workers=%d, ingest.sink.workers=%d)",
            settings.topic_partitions,
            settings.effective_topic_partitions,
            settings.max_consumers,
            settings.processors.workers,
            settings.ingest.sink.workers,
        )


def partition_problem(settings: Settings, name: str, partitions: int) -> str | None:
    """Why topic `name` (base name) with `partitions` partitions is wrong, else None.

    Consumer-group topics need `effective_topic_partitions`. Compacted topics are read
    whole by every reader (no group), so they are never grown (growing would move a key's
    latest value to another partition, behind its older one): `topic_partitions` or more.
    """
    if name in COMPACTED_TOPICS:
        if partitions >= settings.topic_partitions:
            return None
        wanted = settings.topic_partitions
    elif partitions == settings.effective_topic_partitions:
        return None
    else:
        wanted = settings.effective_topic_partitions
    return f"{settings.topic(name)} has {partitions} partitions, not {wanted}"


def create_topics(settings: Settings, names: Iterable[str] = TOPICS) -> list[str]:
    """Create the missing topics explicitly (never auto-creation); return the created ones.

    Topics get `settings.effective_topic_partitions`: `topic_partitions` raised to the
    largest consumer count (one log line says so). Existing consumer-group topics with
    fewer partitions are grown (`grow_topics`).
    """
    names = list(names)
    admin = AdminClient(admin_config(settings))
    existing = admin.list_topics(timeout=10).topics
    partitions = settings.effective_topic_partitions
    wanted = []
    for name in names:
        full = settings.topic(name)
        if full in existing:
            continue
        config = {"cleanup.policy": "compact"} if name in COMPACTED_TOPICS else {}
        config.update(TOPIC_CONFIGS.get(name, {}))
        wanted.append(
            NewTopic(full, num_partitions=partitions, replication_factor=1, config=config)
        )
    short = [
        n
        for n in names
        if n not in COMPACTED_TOPICS
        and settings.topic(n) in existing
        and len(existing[settings.topic(n)].partitions) < partitions
    ]
    if wanted or short:
        _partitions_note(settings)
    if short:
        grow_topics(settings, short, admin=admin)
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


def grow_topics(
    settings: Settings, names: Iterable[str], *, admin: AdminClient | None = None
) -> list[str]:
    """Raise the partitions of existing topics (base names) to `effective_topic_partitions`;
    return the grown ones. Kafka only adds partitions: a key's new records may land on a
    new partition (per-key order holds again from then on), so compacted topics are left
    alone (see `partition_problem`)."""
    admin = admin or AdminClient(admin_config(settings))
    metadata = admin.list_topics(timeout=10).topics
    partitions = settings.effective_topic_partitions
    requests = []
    for name in names:
        full = settings.topic(name)
        topic = metadata.get(full)
        if name in COMPACTED_TOPICS or topic is None or len(topic.partitions) >= partitions:
            continue
        log.info("growing %s from %d to %d partitions", full, len(topic.partitions), partitions)
        requests.append(NewPartitions(full, partitions))
    if not requests:
        return []
    grown = []
    for topic, future in admin.create_partitions(requests, request_timeout=15).items():
        try:
            future.result()
            grown.append(topic)
        except KafkaException as exc:
            code = exc.args[0].code() if exc.args else None
            if code == KafkaError._UNSUPPORTED_FEATURE:
                # The embedded broker (tansu) has no CreatePartitions; its memory storage
                # starts empty on every `meterline up`, so its topics are created right.
                log.warning(
                    "%s keeps its %d partitions: the broker cannot add partitions (%s); "
                    "consumers beyond that many stay idle. Recreate the topic to grow it.",
                    topic,
                    len(metadata[topic].partitions),
                    exc.args[0].str(),
                )
            elif "INVALID_PARTITIONS" not in str(exc):  # another worker grew it first
                raise
    return grown
