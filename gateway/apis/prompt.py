"""RequestEvent.prompt_hash and prompt_chars, for any dialect.

The text is that of `dialect.input_slots(body)` (what guardrails read and the drift
signature takes). The hash is sha256 over the compact JSON (orjson) of the dialect's
`hashed_fields` present in the body, in order: the prompt field alone for chat
(`messages`), embeddings (`input`) and completions (`prompt`), so theirs is exactly
sha256(orjson.dumps(body[field])); `system` then `messages` for Anthropic Messages,
`instructions` then `input` for Responses (each JSON value is self-delimiting). A field
absent or null is skipped. The text itself is never kept.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway.apis.base import Dialect

__all__ = ["prompt_stats", "prompt_texts"]


def prompt_texts(dialect: Dialect, body: dict[str, Any]) -> list[str]:
    """Every prompt text of a parsed body, in order (system first)."""
    return [container[key] for container, key, _ in dialect.input_slots(body)]


def prompt_stats(
    dialect: Dialect, body: dict[str, Any], texts: list[str] | None = None
) -> tuple[str, int]:
    """(sha256 of the prompt's JSON, its character count); pass `texts` (prompt_texts)
    when already at hand."""
    fields = getattr(dialect, "hashed_fields", (dialect.prompt_field,))
    digest = hashlib.sha256()
    for field in fields:
        value = body.get(field)
        if value is None and len(fields) > 1:
            continue
        try:
            digest.update(orjson.dumps(value))
        except TypeError:  # integers beyond 64 bits and similar oddities
            digest.update(repr(value).encode())
    if texts is None:
        texts = prompt_texts(dialect, body)
    return digest.hexdigest(), sum(len(text) for text in texts)
