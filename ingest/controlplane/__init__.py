"""Control-plane restore: the warehouse's copy of control records and enforcement
decisions, re-published when the broker comes back without them (`restore.py`), and
which decisions are in force (`decisions.py`, also read by `/api/enforcement`)."""

from __future__ import annotations

__all__: list[str] = []
