"""The one lifecycle shape every long-lived component follows, written down once.

- A component that owns a thread (a Kafka producer's poll loop, a background reader) is
  a `Component`: sync `start()` then `close()`. `close()` stops intake, flushes what it
  holds and releases its resources; a closed component is not started again. Something
  with nothing to start (a control publisher) has only `close()`.
- A component bound to the running event loop (an aiohttp session, the gateway runtime)
  is an `AsyncComponent`: `async start()` inside the loop, then `async aclose()`.
- A supervised child process (the embedded broker, each service of `meterline up`) is
  different on purpose: `start()` / `stop()`, because the supervisor stops and starts the
  same one again (see `meterline.supervisor.Child`).

Owners close in reverse data-flow order: stop intake, flush the emitter, flush the sinks,
commit (ARCHITECTURE, STYLE §13). `tests/unit/meterline/test_lifecycle.py` checks the
gateway's and ingest's components against these Protocols.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["AsyncComponent", "Component"]


@runtime_checkable
class Component(Protocol):
    """Thread-owning: sync `start()`, then `close()` (stop intake, flush, release)."""

    def start(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncComponent(Protocol):
    """Loop-bound: `await start()` inside the running loop, then `await aclose()`."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...
