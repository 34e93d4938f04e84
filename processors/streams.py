"""What every processors stage shares: raw-bytes topics, guarded handling, the pipeline.

Values are read and sent as raw bytes so no payload can break deserialization. Each
message's work runs under a `Guard`: what the logic rejects, or a bug, becomes a dead
letter and the stream goes on; what the work returns is then sent outside the guard.

Stages register on the app's `StagePipeline` (`consume` for a handler of one message,
`consume_batch` for one of a batch); processors/batches.py feeds it batches from the
consumer group and commits each batch once its outputs are acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar
from weakref import WeakKeyDictionary

import faust
from faust.types import Message

from meterline.settings import Settings
from processors.budgets.control import ControlReader
from processors.decoded import forget_decoded
from processors.dlq import DeadLetterPublisher
from processors.errors import Rejected
from processors.llmjacking.policy import PolicyBook, RejectedPolicy
from processors.metrics import ProcessorMetrics
from processors.outputs import Outputs, OutputTopic
from schemas.topics import partition_for

__all__ = [
    "Guard",
    "Routed",
    "StagePipeline",
    "consume",
    "consume_batch",
    "drop_moved_keys",
    "on_rebalance",
    "pipeline",
    "policy_reader",
    "raw_topic",
    "send_all",
]

T = TypeVar("T")

Partitions = set[tuple[str, int]]  # (full topic name, partition)
BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]
RebalanceListener = Callable[[Partitions], Awaitable[None]]

log = logging.getLogger(__name__)

_PIPELINES: WeakKeyDictionary[faust.App, StagePipeline] = WeakKeyDictionary()


def pipeline(app: faust.App, settings: Settings) -> StagePipeline:
    """The app's pipeline (created with its producer on first use)."""
    found = _PIPELINES.get(app)
    if found is None:
        found = _PIPELINES[app] = StagePipeline(Outputs(settings))
    return found


def raw_topic(app: faust.App, settings: Settings, name: str) -> OutputTopic:
    """Topic `name` (a base name from schemas.topics), keys and values as raw bytes."""
    return pipeline(app, settings).outputs.topic(name)


class Routed(Protocol):
    """One record to send: `topic` is a base name, a `payload()` of None is a tombstone."""

    @property
    def topic(self) -> str: ...

    @property
    def key(self) -> str: ...

    def payload(self) -> bytes | None: ...


async def send_all(outputs: Mapping[str, OutputTopic], items: Iterable[Routed]) -> None:
    """Sends each item to its topic in order (value None lifts a decision, ARCHITECTURE §3)."""
    for item in items:
        await outputs[item.topic].send(key=item.key.encode(), value=item.payload())


@dataclass(frozen=True)
class Guard:
    """Runs one message's work so that a bad message or a bug never stops the stream.

    A `rejected` exception dead-letters the message with its reason; any other exception
    is logged on `log` as "<label> failed on <partition>@<offset>" and dead-letters it as
    an internal error. Only work that succeeded reaches `then`, outside the guard.
    """

    dead_letters: DeadLetterPublisher
    stage: str
    log: logging.Logger
    label: str
    rejected: tuple[type[Rejected], ...] = ()

    async def run(
        self,
        message: Message,
        work: Callable[[Message], T],
        then: Callable[[T], Awaitable[None]],
    ) -> None:
        try:
            result = work(message)
        except self.rejected as exc:
            await self.dead_letters.publish(message, exc.reason, self.stage)
            return
        except Exception as exc:  # a bug must not stop the stream; keep the evidence
            await self._internal_error(message, exc)
            return
        await then(result)

    async def each(
        self, messages: Iterable[Message], work: Callable[[Message], T]
    ) -> list[tuple[Message, T]]:
        """`work` on each message, in order: the results of those that succeeded (the
        others are dead letters, as in `run`)."""
        results = []
        for message in messages:
            try:
                results.append((message, work(message)))
            except self.rejected as exc:
                await self.dead_letters.publish(message, exc.reason, self.stage)
            except Exception as exc:  # a bug must not stop the stream; keep the evidence
                await self._internal_error(message, exc)
        return results

    async def _internal_error(self, message: Message, exc: Exception) -> None:
        self.log.exception("%s failed on %s@%s", self.label, message.partition, message.offset)
        await self.dead_letters.publish(message, f"internal error: {exc!r}", self.stage)


@dataclass(frozen=True)
class _Stage:
    name: str
    handle: BatchHandler
    on_exit: Callable[[], None] | None


@dataclass
class StagePipeline:
    """Every stage by input topic, in registration order, and the rebalance listeners."""

    outputs: Outputs
    stages: dict[str, list[_Stage]] = field(default_factory=dict)  # full topic name -> stages
    metrics: list[ProcessorMetrics] = field(default_factory=list)
    on_assigned: list[RebalanceListener] = field(default_factory=list)
    on_revoked: list[RebalanceListener] = field(default_factory=list)

    def topics(self) -> list[str]:
        return sorted(self.stages)

    async def handle(self, batch: Sequence[Message]) -> None:
        """Each topic's messages (in fetch order: partition order holds) to each of its
        stages in turn; every message is decoded once for all of them (decoded.py)."""
        by_topic: dict[str, list[Message]] = {}
        for message in batch:
            by_topic.setdefault(message.topic, []).append(message)
        try:
            for topic, messages in by_topic.items():
                for stage in self.stages.get(topic, ()):
                    await stage.handle(messages)
                    for metrics in self.metrics:
                        metrics.event_processed(stage.name, len(messages))
        finally:
            forget_decoded()

    async def assigned(self, partitions: Partitions) -> None:
        for listener in self.on_assigned:
            await listener(partitions)

    async def revoked(self, partitions: Partitions) -> None:
        for listener in self.on_revoked:
            await listener(partitions)

    def stopped(self) -> None:
        for stages in self.stages.values():
            for stage in stages:
                if stage.on_exit is not None:
                    stage.on_exit()

    @property
    def failures(self) -> int:
        return self.outputs.failures

    def flush(self, timeout_s: float) -> bool:
        return self.outputs.flush(timeout_s)


def consume_batch(
    app: faust.App,
    source: OutputTopic,
    name: str,
    metrics: ProcessorMetrics,
    handle: BatchHandler,
    on_exit: Callable[[], None] | None = None,
) -> None:
    """Registers stage `name`: each batch of `source`'s messages is handled, then counted.

    Stages of one topic get the batch in registration order; `on_exit` runs when the
    worker stops consuming (a clean stop included).
    """
    found = _PIPELINES[app]
    if metrics not in found.metrics:
        found.metrics.append(metrics)
    found.stages.setdefault(source.get_topic_name(), []).append(_Stage(name, handle, on_exit))


def consume(
    app: faust.App,
    source: OutputTopic,
    name: str,
    metrics: ProcessorMetrics,
    handle: Callable[[Message], Awaitable[None]],
    on_exit: Callable[[], None] | None = None,
) -> None:
    """`consume_batch` for a stage that handles one message at a time, in order."""

    async def each(messages: Sequence[Message]) -> None:
        for message in messages:
            await handle(message)

    consume_batch(app, source, name, metrics, each, on_exit)


def on_rebalance(app: faust.App, assigned: RebalanceListener, revoked: RebalanceListener) -> None:
    """Listeners of this worker's partitions: given (`assigned`: the whole new set) and
    taken away (`revoked`: after the last batch of theirs was committed)."""
    found = _PIPELINES[app]
    found.on_assigned.append(assigned)
    found.on_revoked.append(revoked)


def drop_moved_keys(
    app: faust.App,
    settings: Settings,
    topic: str,
    forget: Callable[[Callable[[str], bool]], int],
    what: str,
) -> None:
    """State keyed like an internal topic (`partition_for(key)`): when a rebalance gives
    this worker a new assignment, `forget` drops every key whose partition of `topic` is
    not in it (its new owner starts that key over)."""
    name, partitions = settings.topic(topic), settings.effective_topic_partitions

    async def assigned(now: Partitions) -> None:
        mine = {partition for assigned_topic, partition in now if assigned_topic == name}
        dropped = forget(lambda key: partition_for(key, partitions) not in mine)
        if dropped:
            log.info("%d %s moved to another worker", dropped, what)

    async def revoked(_gone: Partitions) -> None:
        return None  # what was revoked is dropped once the new assignment is known

    on_rebalance(app, assigned, revoked)


def policy_reader(
    settings: Settings, policies: PolicyBook, dead_letters: DeadLetterPublisher, stage: str
) -> ControlReader:
    """A ControlReader that feeds a detector's `policies` from the control topic.

    A policy of the detector's kind that cannot be used becomes a dead letter of `stage`.
    """

    async def on_control(message: Message) -> None:
        try:
            policies.apply(message.key, message.value)
        except RejectedPolicy as exc:
            await dead_letters.publish(message, exc.reason, stage)

    return ControlReader(settings, on_control)
