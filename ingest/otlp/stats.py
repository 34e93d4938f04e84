"""Counters of the OTLP receiver, shown by ingest's /healthz (`otlp`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["OtlpStats"]


@dataclass
class OtlpStats:
    exports: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0  # per-span refusals (invalid, implausible, unpublishable)
    spans_with_dropped_claims: int = 0  # claimed attribution that disagreed with the credential
    unauthenticated: int = 0  # exports refused with 401
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
