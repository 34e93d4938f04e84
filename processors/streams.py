"""What every processors agent shares: raw-bytes topics, guarded handling, the agent loop.

Values are read as raw bytes so no payload can break deserialization inside Faust. Each
message's work runs under a `Guard`: what the logic rejects, or a bug, becomes a dead
letter and the loop goes on; what the work returns is then sent outside the guard.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar
from weakref import WeakKeyDictionary

import faust
from faust.types import EventT, Message, TopicT

from meterline.settings import Settings
from processors.budgets.control import ControlReader
from processors.dlq import DeadLetterPublisher
from processors.errors import Rejected
from processors.llmjacking.policy import PolicyBook, RejectedPolicy
from processors.metrics import ProcessorMetrics

__all__ = ["Guard", "Routed", "consume", "policy_reader", "raw_topic", "send_all"]

T = TypeVar("T")

# app -> topic name -> the handlers of its one agent (see `consume`)
_HANDLERS: WeakKeyDictionary[faust.App, dict[str, list[_Handler]]] = WeakKeyDictionary()


def raw_topic(app: faust.App, settings: Settings, name: str) -> TopicT:
    """Topic `name` (a base name from schemas.topics), keys and values as raw bytes."""
    return app.topic(settings.topic(name), key_serializer="raw", value_serializer="raw")


class Routed(Protocol):
    """One record to send: `topic` is a base name, a `payload()` of None is a tombstone."""

    @property
    def topic(self) -> str: ...

    @property
    def key(self) -> str: ...

    def payload(self) -> bytes | None: ...


async def send_all(outputs: Mapping[str, TopicT], items: Iterable[Routed]) -> None:
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
            self.log.exception("%s failed on %s@%s", self.label, message.partition, message.offset)
            await self.dead_letters.publish(message, f"internal error: {exc!r}", self.stage)
            return
        await then(result)


@dataclass(frozen=True)
class _Handler:
    name: str
    handle: Callable[[Message], Awaitable[None]]
    on_exit: Callable[[], None] | None


def consume(
    app: faust.App,
    source: TopicT,
    name: str,
    metrics: ProcessorMetrics,
    handle: Callable[[Message], Awaitable[None]],
    on_exit: Callable[[], None] | None = None,
) -> None:
    """Registers handler `name`: each message of `source` is handled, then counted.

    Every handler of one topic runs in ONE Faust agent (named after the first handler),
    in registration order, each message handed to each handler in turn: Faust's per-
    stream plumbing is paid once per message rather than once per handler, and the
    handlers see the same `Message` (the same value bytes), so a decoder that memoizes
    by payload identity decodes each message once (processors/decoded.py). Handlers stay
    independent: each runs its work under its own `Guard`. `on_exit` runs however the
    agent's loop ends (a clean stop included).
    """
    registry = _HANDLERS.setdefault(app, {})
    handlers = registry.get(source.get_topic_name())
    if handlers is not None:
        handlers.append(_Handler(name, handle, on_exit))
        return
    handlers = registry[source.get_topic_name()] = [_Handler(name, handle, on_exit)]

    async def agent(stream: faust.StreamT[bytes]) -> None:
        event: EventT
        try:
            async for event in stream.events():
                message = event.message
                for handler in handlers:
                    await handler.handle(message)
                    metrics.event_processed(handler.name)
        finally:
            for handler in handlers:
                if handler.on_exit is not None:
                    handler.on_exit()

    app.agent(source, name=name)(agent)


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
