"""The shapes of the gateway runtime's injected collaborators that live in no subpackage.

`GatewayRuntime` takes them so a test can hand it in-memory ones; production builds the
Kafka-backed ones in `GatewayRuntime.from_settings`. (The emitter's shape is
`gateway.emit.EventEmitter`, the upstream's `gateway.providers.Upstream`.)
`StaticViews` and `MemoryControlPublisher` are the in-memory stand-ins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from meterline.views import Apply

__all__ = [
    "Clock",
    "ControlSink",
    "MemoryControlPublisher",
    "StaticViews",
    "Views",
    "ViewsFactory",
]

Clock = Callable[[], float]
"""Monotonic seconds (rate-limit buckets, view staleness): `time.monotonic` in production."""


class Views(Protocol):
    """Keeps the key, enforcement and budget views current (a thread: sync start/close)."""

    @property
    def age_s(self) -> float: ...

    @property
    def ready(self) -> bool: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


ViewsFactory = Callable[[dict[str, Apply]], Views]
"""Given topic -> apply function (the runtime's own views), the reader that feeds them."""


class ControlSink(Protocol):
    """Publishes control records for the admin API (blocking; run off the loop)."""

    def publish(
        self,
        key: str,
        value: bytes | None,
        topic: str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None: ...

    def close(self) -> None: ...


class StaticViews:
    """Views that are always current and never read anything: a test fills the runtime's
    stores (`runtime.keys.apply(...)`) directly, or through `handlers`."""

    def __init__(self, handlers: dict[str, Apply]) -> None:
        self.handlers = handlers

    @property
    def age_s(self) -> float:
        return 0.0

    @property
    def ready(self) -> bool:
        return True

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemoryControlPublisher:
    """Keeps what the admin API published, in order, instead of sending it to a broker."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes | None, str | None]] = []
        self.headers: list[list[tuple[str, bytes]] | None] = []  # of each published record

    def publish(
        self,
        key: str,
        value: bytes | None,
        topic: str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.published.append((key, value, topic))
        self.headers.append(headers)

    def close(self) -> None:
        pass
