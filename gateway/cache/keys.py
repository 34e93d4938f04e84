"""Cache keys and per-request directives (pure).

An exact key is a 16-byte BLAKE2b digest of the partition (`org:<org>` or `key:<id>`),
the API, and the request body in canonical JSON (sorted keys) without the fields that do
not change the answer (`gateway.cache.ignore_params`). The partition is part of what is
hashed, so an entry filled for one org can never be found by another: isolation is by
construction, not by a check that could be forgotten.

A semantic partition is the same digest over the body without its prompt fields: two
requests share one only when model, parameters, API and scope all match, and then only
their prompts' embeddings are compared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Literal

import orjson

__all__ = [
    "Directive",
    "carries_tools_or_media",
    "directive_of",
    "exact_key",
    "semantic_partition",
]

Directive = Literal["use", "refresh", "skip"]

_SEP = b"\x1f"
# Content a semantic neighbour must not stand in for (the answer depends on it exactly).
# Tuples: a client's list or object in a type or role field compares unequal, where a
# set would raise TypeError hashing it.
_MEDIA_OR_TOOL_TYPES = (
    "image",
    "image_url",
    "input_image",
    "input_audio",
    "input_file",
    "file",
    "document",
    "tool_result",
    "function_call_output",
)
_TOOL_ROLES = ("tool", "function")


def _digest(partition: str, api: str, fields: dict[str, Any]) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(partition.encode())
    digest.update(_SEP)
    digest.update(api.encode())
    digest.update(_SEP)
    try:
        digest.update(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))
    except TypeError:  # integers beyond 64 bits and similar oddities
        digest.update(repr(sorted(fields.items())).encode())
    return digest.digest()


def exact_key(partition: str, api: str, body: dict[str, Any], ignored: frozenset[str]) -> bytes:
    """The exact-match key of a request (its `stream` flag included: a stream is replayed
    as a stream)."""
    if ignored.isdisjoint(body):
        return _digest(partition, api, body)
    return _digest(partition, api, {k: v for k, v in body.items() if k not in ignored})


def semantic_partition(
    partition: str,
    api: str,
    body: dict[str, Any],
    ignored: frozenset[str],
    prompt_fields: Iterable[str],
) -> bytes:
    """Where a request's semantic neighbours live: everything but the prompt must match."""
    left_out = ignored.union(prompt_fields)
    return _digest(partition, api, {k: v for k, v in body.items() if k not in left_out})


def carries_tools_or_media(value: Any) -> bool:
    """Whether a prompt holds tool results or images/audio/files anywhere."""
    if isinstance(value, dict):
        if value.get("type") in _MEDIA_OR_TOOL_TYPES or value.get("role") in _TOOL_ROLES:
            return True
        return any(carries_tools_or_media(v) for v in value.values())
    if isinstance(value, list):
        return any(carries_tools_or_media(v) for v in value)
    return False


def directive_of(headers: Iterable[tuple[bytes, bytes]]) -> Directive:
    """What the client asks of the cache (docs/cache.md):

    - `x-meterline-cache: off` or `Cache-Control: no-store`: neither read nor store;
    - `x-meterline-cache: refresh` or `Cache-Control: no-cache`: do not read, store the
      fresh answer (a forced refresh);
    - otherwise use the cache as the policy says.
    """
    directive: Directive = "use"
    for name, value in headers:
        if name == b"x-meterline-cache":
            word = value.strip().lower()
            if word in (b"off", b"no-store", b"false"):
                return "skip"
            if word in (b"refresh", b"no-cache"):
                directive = "refresh"
        elif name == b"cache-control":
            words = {w.strip() for w in value.lower().split(b",")}
            if b"no-store" in words:
                return "skip"
            if b"no-cache" in words:
                directive = "refresh"
    return directive
