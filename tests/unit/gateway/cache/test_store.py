"""Bounded memory (entries, bytes), LRU and TTL; the shared format round trip."""

from __future__ import annotations

from gateway.cache.entry import CachedAnswer
from gateway.cache.store import MemoryStore
from gateway.usage import ResponseSummary


def answer(size: int = 10, expires_at: float = 100.0, stream: bool = False) -> CachedAnswer:
    summary = ResponseSummary(model_used="gpt-4o", input_tokens=3, output_tokens=5)
    return CachedAnswer(b"x" * size, stream, summary, "openai", "ev-1", expires_at)


def test_least_recently_used_goes_first_past_max_entries() -> None:
    evicted: list[bytes] = []
    store = MemoryStore(max_entries=2, max_bytes=10**6, on_evict=evicted.append)
    store.put(b"a", answer())
    store.put(b"b", answer())
    assert store.get(b"a", 0) is not None  # a is now the most recent
    store.put(b"c", answer())
    assert evicted == [b"b"] and store.evictions == 1
    assert store.get(b"b", 0) is None and store.get(b"a", 0) is not None


def test_bytes_are_bounded_and_counted() -> None:
    one = answer(1000).size
    store = MemoryStore(max_entries=100, max_bytes=one * 2)
    for name in (b"a", b"b", b"c"):
        assert store.put(name, answer(1000))
    assert len(store) == 2 and store.bytes == one * 2
    assert not store.put(b"big", answer(one * 3))  # larger than the whole store
    store.put(b"c", answer(1000))  # replacing an entry does not double-count it
    assert store.bytes == one * 2


def test_an_expired_entry_is_never_returned_and_is_dropped() -> None:
    evicted: list[bytes] = []
    store = MemoryStore(10, 10**6, evicted.append)
    store.put(b"a", answer(expires_at=50.0))
    assert store.get(b"a", 49.9) is not None
    assert store.get(b"a", 50.0) is None
    assert len(store) == 0 and store.bytes == 0 and evicted == [b"a"]


def test_shared_format_round_trips_and_rejects_garbage() -> None:
    original = answer(stream=True)
    original.summary.tool_calls.append({"name": "f", "arguments_hash": "h"})
    assert CachedAnswer.decode(original.encode()) == original
    assert CachedAnswer.decode(b"no separator") is None
    assert CachedAnswer.decode(b'{"stream": true}\x00body') is None
