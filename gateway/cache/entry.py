"""One cached answer: the bytes the client was sent, and what its RequestEvent needs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

from gateway.usage import ResponseSummary

__all__ = ["CachedAnswer"]

_OVERHEAD = 256  # bytes counted per entry beyond its body (key, summary, bookkeeping)


@dataclass(slots=True)
class CachedAnswer:
    """`body` is the answer as sent (after output guardrails): a JSON document, or for a
    stream every SSE event in order, replayed as they were. `provider` and `summary`
    (model, tokens) are the original answer's: they price the saving."""

    body: bytes
    stream: bool
    summary: ResponseSummary
    provider: str | None
    source_event_id: str
    expires_at: float  # wall-clock seconds (shared across replicas through Redis)
    vector_bytes: int = 0  # its prompt's embedding in the semantic index (this process only)

    @property
    def size(self) -> int:
        return len(self.body) + _OVERHEAD + self.vector_bytes

    def encode(self) -> bytes:
        """Bytes for a shared backend: JSON metadata, NUL, the body (JSON never holds a
        raw NUL, so the first one separates them)."""
        meta: dict[str, Any] = {
            "stream": self.stream,
            "summary": asdict(self.summary),
            "provider": self.provider,
            "source_event_id": self.source_event_id,
            "expires_at": self.expires_at,
        }
        return orjson.dumps(meta) + b"\x00" + self.body

    @classmethod
    def decode(cls, data: bytes) -> CachedAnswer | None:
        """The entry `encode` wrote, or None for anything else."""
        meta_bytes, sep, body = data.partition(b"\x00")
        if not sep:
            return None
        try:
            meta = orjson.loads(meta_bytes)
            return cls(
                body=body,
                stream=bool(meta["stream"]),
                summary=ResponseSummary(**meta["summary"]),
                provider=meta["provider"],
                source_event_id=str(meta["source_event_id"]),
                expires_at=float(meta["expires_at"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
