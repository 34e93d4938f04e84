"""The in-process store: least recently used entries evicted past `max_entries` or
`max_bytes`, expired ones dropped when met. Single-threaded (the event loop)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from gateway.cache.entry import CachedAnswer

__all__ = ["MemoryStore"]


class MemoryStore:
    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        on_evict: Callable[[bytes], None] = lambda _key: None,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self._entries: OrderedDict[bytes, CachedAnswer] = OrderedDict()
        self._on_evict = on_evict  # the semantic index forgets the key too

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now: float) -> CachedAnswer | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: bytes, entry: CachedAnswer) -> bool:
        """Store (replacing any older entry); False when the entry alone is over the limit."""
        if entry.size > self.max_bytes:
            return False
        if key in self._entries:
            self._drop(key, evicted=False)
        self._entries[key] = entry
        self.bytes += entry.size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1
        return True

    def _drop(self, key: bytes, evicted: bool = True) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size
        if evicted:
            self._on_evict(key)
