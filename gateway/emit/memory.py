"""An in-memory emitter: every event kept in a list, in order, always delivered.

For unit tests of the proxy (and any code that takes an `EventEmitter`): no broker, no
thread, so a test reads what the gateway emitted right after the request returns.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["MemoryEmitter"]


class MemoryEmitter:
    """`events` holds `(topic, key, value)` as emitted; `values(topic)` decodes them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes, bytes]] = []
        self.started = False
        self.closed = False

    def start(self) -> None:
        self.started = True

    def emit(self, topic: str, key: bytes, value: bytes) -> None:
        self.events.append((topic, key, value))

    def close(self, timeout_s: float | None = None) -> None:
        self.closed = True

    def values(self, topic: str) -> list[dict[str, Any]]:
        """The JSON events emitted on `topic`, oldest first."""
        return [orjson.loads(value) for t, _, value in self.events if t == topic]

    @property
    def state(self) -> str:
        return "connected"

    @property
    def queue_depth(self) -> int:
        return 0

    @property
    def spool_size(self) -> int:
        return 0

    @property
    def quarantined(self) -> int:
        return 0

    @property
    def oldest_undelivered_age_s(self) -> float | None:
        return None
