"""The fingerprint of a tool call's arguments: what the agent-loop detector counts repeats of.

One implementation for every producer (the gateway's chat, Messages and Responses readers,
ingest's OTLP spans), so one call hashes alike however it was seen. Arguments compare as
JSON values, not text: key order and whitespace do not count. Values that change on every
call without changing what is asked are masked:

- date-times (ISO 8601 with a time of day), inside any string too;
- UUIDs, inside any string too (request ids, idempotency keys);
- a key that names a nonce or a clock (`request_id`, `idempotency_key`, `nonce`,
  `trace_id`, `timestamp`, `since`, `created_at`, ...) with a plain value: left out, so
  a call is the same call whether its clock is called `since` or `timestamp`, or it
  sends none this time (a structure under such a key is looked into instead).

Kept on purpose: plain dates (a report per day is a new question), hex ids (a commit SHA
is an argument), page numbers, offsets and opaque cursors (a new cursor is usually a new
page: masking it would make every legitimate page-through look like a loop).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

__all__ = ["MASKED_ID", "MASKED_TIME", "normalized_arguments", "tool_arguments_hash"]

MASKED_TIME = "<time>"
MASKED_ID = "<id>"
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NONCE_KEY = re.compile(
    r"(?:^|[_\-.])(?:request|idempotency|trace|span|correlation|dedup(?:e|lication)?)[_\-.]?"
    r"(?:id|key)$|^(?:nonce|cache_?buster|rid)$",
    re.IGNORECASE,
)
_CLOCK_KEY = re.compile(
    r"^(?:ts|timestamp|time|now|since|until|before|after|as_of)$|(?:^|_)(?:at|ts|time|timestamp)$",
    re.IGNORECASE,
)
_MAX_DEPTH = 32  # deeper than any real arguments: the rest is hashed as it is


def normalized_arguments(value: Any, depth: int = 0) -> Any:
    """`value` (parsed JSON) with the volatile parts masked."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            str(key): normalized_arguments(item, depth + 1)
            for key, item in value.items()
            if not (_is_volatile_key(str(key)) and not isinstance(item, (dict, list)))
        }
    if isinstance(value, list):
        return [normalized_arguments(item, depth + 1) for item in value]
    if isinstance(value, str):
        return _UUID.sub(MASKED_ID, _DATE_TIME.sub(MASKED_TIME, value))
    return value


def tool_arguments_hash(arguments: Any) -> str:
    """sha256 hex of the normalized arguments: a JSON string (chat, Responses, spans) or
    an already parsed value (Messages' `input`); text that is not JSON is hashed with
    its whitespace collapsed and its date-times and UUIDs masked."""
    if isinstance(arguments, (str, bytes)):
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            text = (
                arguments.decode("utf-8", "replace") if isinstance(arguments, bytes) else arguments
            )
            collapsed = " ".join(normalized_arguments(text).split())
            return _sha256(collapsed.encode("utf-8", errors="surrogatepass"))
    try:
        data = orjson.dumps(normalized_arguments(arguments), option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits and similar oddities
        data = repr(arguments).encode()
    return _sha256(data)


def _is_volatile_key(key: str) -> bool:
    return bool(_NONCE_KEY.search(key) or _CLOCK_KEY.search(key))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
