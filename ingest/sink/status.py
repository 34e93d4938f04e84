"""What the sink is doing, for /healthz (written by the consumer thread, read by the API)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["SinkStatus", "SinkStatusGroup"]


@dataclass
class SinkStatus:
    started_at: float = field(default_factory=time.time)
    running: bool = False
    assigned_partitions: int = 0
    messages_consumed: int = 0
    rows_written: int = 0
    dead_letters: int = 0
    pending_rows: int = 0
    uncommitted_messages: int = 0
    # Messages on the assigned partitions not consumed yet (high watermark - position),
    # from librdkafka's cached watermarks: no broker call.
    lag_messages: int = 0
    flushes: int = 0
    commits: int = 0
    last_flush_at: float | None = None
    last_commit_at: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def update(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}


_SUMMED = (
    "assigned_partitions",
    "messages_consumed",
    "rows_written",
    "dead_letters",
    "pending_rows",
    "uncommitted_messages",
    "lag_messages",
    "flushes",
    "commits",
)


@dataclass
class SinkStatusGroup:
    """The sink's consumer threads (ingest.sink.workers) as one status for /healthz:
    counts summed, running only when all run, the latest flush and commit, the worst
    failure streak and the first error; `consumers` says how many."""

    members: list[SinkStatus]

    def snapshot(self) -> dict[str, Any]:
        parts = [member.snapshot() for member in self.members]
        merged = dict(parts[0])
        for name in _SUMMED:
            merged[name] = sum(part[name] for part in parts)
        merged["started_at"] = min(part["started_at"] for part in parts)
        merged["running"] = all(part["running"] for part in parts)
        for name in ("last_flush_at", "last_commit_at"):
            times = [part[name] for part in parts if part[name] is not None]
            merged[name] = max(times) if times else None
        merged["consecutive_failures"] = max(part["consecutive_failures"] for part in parts)
        merged["last_error"] = next((p["last_error"] for p in parts if p["last_error"]), None)
        merged["consumers"] = len(parts)
        return merged
