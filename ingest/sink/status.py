"""What the sink is doing, for /healthz (written by the consumer thread, read by the API)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["SinkStatus"]


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
