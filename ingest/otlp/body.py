"""The HTTP body of an OTLP export: which encoding, and the bytes after gzip, size-capped."""

from __future__ import annotations

import zlib
from typing import Literal

from ingest.otlp.errors import MalformedPayloadError, PayloadTooLargeError, UnsupportedMediaError

__all__ = ["Encoding", "decompress", "encoding_of", "too_large"]

Encoding = Literal["protobuf", "json"]

_MEDIA_TYPES: dict[str, Encoding] = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_CHUNK = 64 * 1024


def encoding_of(content_type: str | None) -> Encoding:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    encoding = _MEDIA_TYPES.get(media_type)
    if encoding is None:
        raise UnsupportedMediaError(
            f"unsupported content type {media_type or '(none)'!r}; "
            "send application/x-protobuf or application/json"
        )
    return encoding


def too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"payload larger than the limit of {limit} bytes")


def decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body as sent, or gunzipped; never inflates past `max_bytes` (zip bombs)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity" or not encoding:
        return body
    if encoding != "gzip":
        raise UnsupportedMediaError(
            f"unsupported content encoding {encoding!r}; send gzip or no encoding"
        )
    inflater = zlib.decompressobj(_GZIP_WBITS)
    parts: list[bytes] = []
    size = 0
    pending = body
    try:
        # Inflate in bounded steps so a bomb is refused before it is in memory.
        while not inflater.eof:
            part = inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            if not part and not pending and not inflater.eof:
                raise MalformedPayloadError("gzip body is truncated")
            size += len(part)
            if size > max_bytes:
                raise too_large(max_bytes)
            parts.append(part)
    except zlib.error as exc:
        raise MalformedPayloadError(f"invalid gzip body: {exc}") from exc
    return b"".join(parts)
