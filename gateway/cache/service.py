"""The response cache on the request path: look up after input guardrails, replay a hit,
fill from an answer that passed output guardrails (docs/cache.md).

The proxy calls `lookup` (None: the cache does not apply, e.g. off for this key or opted
out), then either `replay` (a hit) or routes as usual and calls `fill` once the answer
was sent whole. A lookup never fails a request: a broken embedding call or shared store
is a miss. Cached bodies stay in memory (or the shared store): never in an event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.apis import Dialect, ParsedRequest, prompt_texts
from gateway.asgi import JSON_HEADERS, SSE_HEADERS, Send, send_response
from gateway.cache.embed import Embedder
from gateway.cache.entry import CachedAnswer
from gateway.cache.keys import (
    Directive,
    carries_tools_or_media,
    directive_of,
    exact_key,
    semantic_partition,
)
from gateway.cache.policy import CachePolicies, CachePolicy
from gateway.cache.shared import SharedStore
from gateway.cache.store import MemoryStore
from gateway.cache.vectors import Vector, VectorIndex
from gateway.metrics import Metrics
from gateway.record import RequestRecord
from meterline.settings import CacheSettings
from schemas.subjects import key_subject, org_subject

__all__ = ["CacheLookup", "ResponseCache"]

log = logging.getLogger(__name__)

_LOOKUPS = "meterline_gateway_cache_lookups_total"
# Built once: a lookup's result -> (its metric label, its response header).
_REFRESH = ('result="miss"', (b"x-meterline-cache", b"REFRESH"))
_NOTES = {
    status: (f'result="{status}"', (b"x-meterline-cache", status.upper().encode()))
    for status in ("miss", "hit", "semantic_hit")
}


@dataclass(slots=True)
class CacheLookup:
    """One request's cache state: its key, what it found, what to store."""

    key: bytes
    policy: CachePolicy
    directive: Directive
    answer: CachedAnswer | None = None
    similarity: float | None = None
    partition: bytes | None = None  # semantic partition (semantic mode only)
    vector: Vector | None = None
    parts: list[bytes] = field(default_factory=list)  # the answer as sent, to store


class ResponseCache:
    def __init__(
        self, settings: CacheSettings, metrics: Metrics, clock: Callable[[], float] = time.time
    ) -> None:
        self.policies = CachePolicies(settings)
        self.index = VectorIndex()
        self.store = MemoryStore(settings.max_entries, settings.max_bytes, self.index.remove)
        self.shared: SharedStore | None = None
        self._embedder: Embedder | None = None
        self._ignored = frozenset(settings.ignore_params)
        self._semantic_tools = settings.semantic_tools
        self.clock = clock  # wall clock: entries' expiry is shared across replicas
        self._metrics = metrics
        metrics.counter(_LOOKUPS, "Response cache lookups by result (hit, semantic_hit, miss).")
        metrics.gauge(
            "meterline_gateway_cache_entries", "Cached answers held.", lambda: len(self.store)
        )
        metrics.gauge(
            "meterline_gateway_cache_bytes",
            "Bytes of cached answers held (bounded by gateway.cache.max_bytes).",
            lambda: self.store.bytes,
        )
        metrics.gauge(
            "meterline_gateway_cache_evictions",
            "Cached answers evicted to stay within the bounds.",
            lambda: self.store.evictions,
        )

    def bind(self, embedder: Embedder | None, shared: SharedStore | None) -> None:
        """Its I/O, once the runtime has providers (start)."""
        self._embedder, self.shared = embedder, shared

    # --- lookup ---------------------------------------------------------------------

    async def lookup(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        record: RequestRecord,
        dialect: Dialect,
        parsed: ParsedRequest,
    ) -> CacheLookup | None:
        """The request's lookup (None when the cache does not apply to it)."""
        key_info = record.key
        if key_info is None or not self.policies.any_on:
            return None
        policy = self.policies.for_subjects(key_info.subjects)
        if policy.mode == "off":
            return None
        directive = directive_of(headers)
        if directive == "skip":
            return None
        scope = org_subject(key_info.org) if policy.scope == "org" else key_subject(key_info.key_id)
        key = exact_key(scope, dialect.name, parsed.body, self._ignored)
        lookup = CacheLookup(key, policy, directive)
        if policy.mode == "semantic" and self._semantic_applies(dialect, parsed):
            fields = getattr(dialect, "hashed_fields", (dialect.prompt_field,))
            lookup.partition = semantic_partition(
                scope, dialect.name, parsed.body, self._ignored, fields
            )
        if directive == "use":
            await self._find(lookup, record, dialect, parsed)
        elif lookup.partition is not None:  # a refresh still stores its vector
            lookup.vector = await self._embed(record, dialect, parsed)
        self._note(record, lookup)
        return lookup

    def _semantic_applies(self, dialect: Dialect, parsed: ParsedRequest) -> bool:
        if self._embedder is None or dialect.name == "embeddings":
            return False
        if self._semantic_tools:
            return True
        fields = getattr(dialect, "hashed_fields", (dialect.prompt_field,))
        return not any(carries_tools_or_media(parsed.body.get(f)) for f in fields)

    async def _find(
        self, lookup: CacheLookup, record: RequestRecord, dialect: Dialect, parsed: ParsedRequest
    ) -> None:
        now = self.clock()
        lookup.answer = self.store.get(lookup.key, now)
        if lookup.answer is None and self.shared is not None:
            lookup.answer = await self.shared.get(lookup.key, now)
            if lookup.answer is not None:
                self.store.put(lookup.key, lookup.answer)
        if lookup.answer is not None or lookup.partition is None:
            return
        lookup.vector = await self._embed(record, dialect, parsed)
        if lookup.vector is None:
            return
        found = self.index.nearest(lookup.partition, lookup.vector)
        if found is not None and found[1] >= lookup.policy.similarity:
            answer = self.store.get(found[0], now)
            if answer is not None:
                lookup.answer, lookup.similarity = answer, round(found[1], 6)

    async def _embed(
        self, record: RequestRecord, dialect: Dialect, parsed: ParsedRequest
    ) -> Vector | None:
        assert self._embedder is not None and record.key is not None
        text = "\n".join(prompt_texts(dialect, parsed.body))
        return await self._embedder.embed(text, record.key) if text else None

    def _note(self, record: RequestRecord, lookup: CacheLookup) -> None:
        answer = lookup.answer
        if answer is None:
            status = "miss"
        else:
            status = "hit" if lookup.similarity is None else "semantic_hit"
        label, header = _REFRESH if lookup.directive == "refresh" else _NOTES[status]
        record.cache = status
        self._metrics.inc(_LOOKUPS, label)
        record.response_headers = (*record.response_headers, header)
        if answer is not None:
            record.cache_similarity = lookup.similarity
            record.cache_source_event_id = answer.source_event_id
            record.provider = answer.provider
            record.summary = replace(answer.summary, tool_calls=list(answer.summary.tool_calls))

    # --- hit ------------------------------------------------------------------------

    async def replay(
        self,
        send: Send,
        record: RequestRecord,
        lookup: CacheLookup,
        headers: Callable[[RequestRecord, list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]],
    ) -> None:
        """Send the cached answer: the JSON document, or the stream's events as they were."""
        answer = lookup.answer
        assert answer is not None
        if not answer.stream:
            await send_response(send, 200, answer.body, headers(record, JSON_HEADERS))
            return
        start: dict[str, Any] = {
            "type": "http.response.start",
            "status": 200,
            "headers": headers(record, SSE_HEADERS),
        }
        await send(start)
        record.mark_first_token()
        await send({"type": "http.response.body", "body": answer.body})

    # --- fill -----------------------------------------------------------------------

    def fill(self, lookup: CacheLookup, record: RequestRecord) -> None:
        """Store the answer the client was sent whole (status 200, no error in-band)."""
        if (
            lookup.answer is not None
            or record.status_code != 200
            or record.error_type is not None
            or record.summary is None
            or not lookup.parts
        ):
            return
        answer = CachedAnswer(
            body=b"".join(lookup.parts),
            stream=record.stream,
            summary=record.summary,
            provider=record.provider,
            source_event_id=record.event_id,
            expires_at=self.clock() + lookup.policy.ttl_s,
        )
        indexed = lookup.partition is not None and lookup.vector is not None
        if indexed:  # the vector is held as long as the entry: it counts in the bound
            answer.vector_bytes = lookup.vector.nbytes  # type: ignore[union-attr]
        if not self.store.put(lookup.key, answer):
            return
        if indexed:
            self.index.add(lookup.partition, lookup.key, lookup.vector)  # type: ignore[arg-type]
        if self.shared is not None:
            self.shared.put(lookup.key, answer)

    def stats(self) -> dict[str, Any]:
        counts = self._metrics.counts
        return {
            "entries": len(self.store),
            "bytes": self.store.bytes,
            "max_entries": self.store.max_entries,
            "max_bytes": self.store.max_bytes,
            "evictions": self.store.evictions,
            "vectors": len(self.index),
            "shared": self.shared is not None,
            "lookups": {
                status: counts.get((_LOOKUPS, label), 0) for status, (label, _) in _NOTES.items()
            },
        }
