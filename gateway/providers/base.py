"""The upstream transport interface every provider implements.

`send` returns the body of a successful answer, `stream` yields complete SSE events
(`data: ...\\n\\n` bytes) as they arrive. Both raise only `gateway.errors.UpstreamError`
subclasses: each implementation maps its client library's errors at this boundary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator

__all__ = ["Provider"]


class Provider(ABC):
    """One OpenAI-compatible upstream.

    **Parameters:** `name` (config name), `price_provider` (provider id for pricing).
    """

    name: str
    price_provider: str

    @abstractmethod
    async def send(self, path: str, body: bytes) -> bytes:
        """POST `body` to `path` (e.g. `/chat/completions`); return the 2xx response body."""

    @abstractmethod
    def stream(self, path: str, body: bytes) -> AsyncGenerator[bytes, None]:
        """POST a streaming request; yield each SSE event. Raises before the first event
        when the upstream refuses the request."""

    @abstractmethod
    async def list_models(self) -> list[str]:
        """Model ids the upstream offers."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release provider-owned resources (the shared session is closed by its owner)."""
