"""The emitter surface the gateway runtime relies on, so it can take any emitter.

`KafkaEmitter` is the production one; `MemoryEmitter` keeps events in a list so the proxy
is unit-tested without a broker. A Protocol, not a base class: KafkaEmitter needs no change.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["EventEmitter"]


class EventEmitter(Protocol):
    """Hands events on; `emit` never blocks or raises (ARCHITECTURE §8).

    `start()` / `close()` are sync: the production emitter owns a thread, not a loop.
    The properties feed /healthz and /metrics.
    """

    def start(self) -> None: ...

    def emit(self, topic: str, key: bytes, value: bytes) -> None: ...

    def close(self, timeout_s: float | None = None) -> None: ...

    @property
    def state(self) -> str: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def spool_size(self) -> int: ...

    @property
    def quarantined(self) -> int: ...

    @property
    def oldest_undelivered_age_s(self) -> float | None: ...
