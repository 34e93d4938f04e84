"""The optional shared store: entries on Redis or Valkey, so every gateway replica can
answer from what any one of them cached (`gateway.cache.redis_url`; off by default).

Reads wait for Redis (bounded by `timeout_s`: a slow or absent Redis is a miss, never an
error); writes are fire-and-forget tasks. Keys expire with the entry (PX). Only exact
entries are shared; each replica keeps its own semantic index.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from gateway.cache.entry import CachedAnswer

__all__ = ["SharedStore"]

log = logging.getLogger(__name__)

_PREFIX = b"meterline:cache:"


class SharedStore:
    def __init__(
        self, client: Any, timeout_s: float = 0.05, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client  # a redis.asyncio.Redis
        self._timeout_s = timeout_s
        self._clock = clock
        self._writes: set[asyncio.Task[None]] = set()
        self.errors = 0

    @classmethod
    def from_url(cls, url: str) -> SharedStore:
        import redis.asyncio  # only when configured: the memory store needs no Redis

        return cls(redis.asyncio.from_url(url, socket_connect_timeout=1.0))

    async def get(self, key: bytes, now: float) -> CachedAnswer | None:
        try:
            data = await asyncio.wait_for(self._client.get(_PREFIX + key), self._timeout_s)
        except Exception as exc:  # unreachable, slow, or refused: a miss
            self._failed("read", exc)
            return None
        answer = CachedAnswer.decode(data) if data else None
        return answer if answer is not None and answer.expires_at > now else None

    def put(self, key: bytes, answer: CachedAnswer) -> None:
        task = asyncio.get_running_loop().create_task(self._put(key, answer))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _put(self, key: bytes, answer: CachedAnswer) -> None:
        left_ms = int((answer.expires_at - self._clock()) * 1000)  # expiry is wall time
        if left_ms <= 0:
            return
        try:
            await self._client.set(_PREFIX + key, answer.encode(), px=left_ms)
        except Exception as exc:
            self._failed("write", exc)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 1000 == 0:  # one line, not one per request
            log.warning("response cache: shared store %s failed (%s)", what, type(exc).__name__)

    async def aclose(self) -> None:
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        await self._client.aclose()
