"""RequestEvent.prompt_signature: the drift detector's content fingerprint of a prompt.

The signature function itself is `schemas.signature.prompt_signature` (the format's one
implementation); this module only joins the prompt text: the texts of the dialect's input slots
(`gateway.apis.prompt_texts`: every chat message's string content and text parts, every
string of an embeddings input, ...), joined with a newline, in order. Token-id inputs
carry no text and get no signature.

Cost on the request path (2 slow vCPUs): ~11 us for a short prompt, ~20 us at the 4 KiB
the signature reads. Only the first MAX_BYTES characters are collected (a character is at
least one UTF-8 byte, so they hold the first MAX_BYTES bytes): a 4 MB prompt costs no more.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.signature import MAX_BYTES, prompt_signature

__all__ = ["prompt_text", "request_signature"]


def prompt_text(texts: Iterable[str]) -> str:
    """The prompt's texts joined by newlines, cut after the first MAX_BYTES characters."""
    kept: list[str] = []
    size = 0
    for text in texts:
        kept.append(text[: MAX_BYTES - size])
        size += len(text) + 1
        if size >= MAX_BYTES:
            break
    return "\n".join(kept)


def request_signature(texts: Iterable[str]) -> str | None:
    """The prompt_signature of a request's prompt texts (`gateway.apis.prompt_texts`)."""
    return prompt_signature(prompt_text(texts))
