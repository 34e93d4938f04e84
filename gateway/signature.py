"""RequestEvent.prompt_signature: the drift detector's content fingerprint of a prompt.

The signature function itself is `schemas.signature.prompt_signature` (the format's one
implementation); this module only picks the prompt text: the text of every chat message
(string contents and text parts), or every string of an embeddings input, joined with a
newline, in order. Token-id inputs carry no text and get no signature.

Cost on the request path (2 slow vCPUs): ~11 us for a short prompt, ~20 us at the 4 KiB
the signature reads. Only the first MAX_BYTES characters are collected (a character is at
least one UTF-8 byte, so they hold the first MAX_BYTES bytes): a 4 MB prompt costs no more.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from schemas.signature import MAX_BYTES, prompt_signature

__all__ = ["prompt_text", "request_signature"]


def _texts(value: Any, field: str) -> Iterator[str]:
    if field != "messages":  # embeddings: a string or a list of strings (or token ids)
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (item for item in value if isinstance(item, str))
        return
    for message in value:
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):  # content parts: the text ones
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"]


def prompt_text(body: dict[str, Any], field: str) -> str:
    """The prompt's text joined by newlines, cut after the first MAX_BYTES characters."""
    kept: list[str] = []
    size = 0
    for text in _texts(body.get(field), field):
        kept.append(text[: MAX_BYTES - size])
        size += len(text) + 1
        if size >= MAX_BYTES:
            break
    return "\n".join(kept)


def request_signature(body: dict[str, Any], field: str) -> str | None:
    """The prompt_signature of a parsed request body (`field`: messages or input)."""
    return prompt_signature(prompt_text(body, field))
