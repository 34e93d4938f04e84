"""The upstream transport interface every provider implements.

`send` returns the body of a successful answer, `stream` yields complete SSE events
(`event: ...\\ndata: ...\\n\\n` bytes) as they arrive. Both raise only
`gateway.errors.UpstreamError` subclasses: each implementation maps its client library's
errors at this boundary. `path` is below the provider's `/v1` (`/chat/completions`,
`/messages`); `model` is the upstream model (Azure puts it in the URL).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from meterline.routing_config import ProviderKind

__all__ = ["NATIVE_APIS", "Provider", "Timeouts"]

# The client APIs (gateway/apis) each kind of upstream speaks natively.
NATIVE_APIS: dict[ProviderKind, frozenset[str]] = {
    "openai": frozenset({"chat", "completions", "embeddings", "responses"}),
    "azure": frozenset({"chat", "completions", "embeddings"}),
    "anthropic": frozenset({"messages"}),
}


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds: to connect, until the first byte of the answer (and, for a stream,
    between two events), for the whole of a non-streaming answer."""

    connect_s: float
    first_byte_s: float
    total_s: float


class Provider(ABC):
    """One upstream. **Parameters:** `name` (config name), `kind` (the API family it
    speaks), `price_provider` (provider id for pricing)."""

    name: str
    kind: ProviderKind
    price_provider: str

    @property
    def apis(self) -> frozenset[str]:
        return NATIVE_APIS[self.kind]

    @abstractmethod
    async def send(self, path: str, body: bytes, *, model: str, timeouts: Timeouts) -> bytes:
        """POST `body` to `path`; return the 2xx response body."""

    @abstractmethod
    def stream(
        self, path: str, body: bytes, *, model: str, timeouts: Timeouts
    ) -> AsyncGenerator[list[bytes], None]:
        """POST a streaming request; yield its SSE events as they arrive, a list of the
        complete events each read brought (so the gateway forwards them in one write).
        Raises before the first event when the upstream refuses the request."""

    @abstractmethod
    async def list_models(self) -> list[str]:
        """Model ids the upstream offers."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release provider-owned resources (the shared session is closed by its owner)."""
