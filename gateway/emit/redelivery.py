"""Events the broker acknowledged recently, kept to send again if it turns out to have lost
them.

The embedded broker stores topics in memory: when it restarts, every event it had
acknowledged but no consumer had read yet is gone, and nothing else holds a copy (the
spool only has what was never acknowledged). Such a restart shows in the delivery
reports: a partition's offsets start again from zero. So each acknowledged event is kept
for `window_s` (by the time it was acknowledged, and at most `max_records`), and when a
partition's offset goes back, everything kept is handed back for sending again.

The window is measured up to the start of an outage, not to the first delivery after it:
an outage longer than the window must not age out exactly the events it put at risk.
Without an outage (a quiet spell), the consumers had the whole spell to read them, so
the window runs on. Each
consumer is idempotent on event_id (the sink, the cost and budget stages), so an event
that had been read before the restart costs nothing twice.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from gateway.emit.spool import SpoolRecord

__all__ = ["RecentDeliveries"]


class RecentDeliveries:
    """Not thread-safe: used from the emitter's delivery callbacks (one poll thread)."""

    def __init__(
        self,
        window_s: float,
        max_records: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_s = window_s
        self._kept: deque[tuple[float, SpoolRecord]] = deque(maxlen=max(1, max_records))
        self._highest: dict[tuple[str, int], int] = {}
        self._clock = clock
        self._outage_since: float | None = None
        self.enabled = window_s > 0 and max_records > 0

    def failed(self) -> None:
        """A delivery failed for the broker's sake: the window stops aging until one works."""
        if self._outage_since is None:
            self._outage_since = self._clock()

    def __len__(self) -> int:
        return len(self._kept)

    def delivered(self, partition: int, offset: int, record: SpoolRecord) -> list[SpoolRecord]:
        """Note an acknowledged record; the records to send again (usually none)."""
        if not self.enabled or offset < 0:
            return []
        now = self._clock()
        # Expire first, up to the outage's start if there was one (see the module doc).
        until = now if self._outage_since is None else self._outage_since
        self._outage_since = None
        while self._kept and until - self._kept[0][0] > self._window_s:
            self._kept.popleft()
        slot = (record[0], partition)
        highest = self._highest.get(slot)
        lost: list[SpoolRecord] = []
        if highest is not None and offset <= highest:
            # The broker restarted without its data: whatever it acknowledged lately may
            # never have been read. Every partition restarted with it.
            lost = [kept for _, kept in self._kept]
            self._kept.clear()
            self._highest.clear()
        self._highest[slot] = offset
        self._kept.append((now, record))
        return lost
