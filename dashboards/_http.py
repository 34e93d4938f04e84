"""What both API clients share: reading the OpenAI-shaped error body of an answer."""

from __future__ import annotations

import httpx

__all__ = ["error_message"]


def error_message(response: httpx.Response) -> str:
    """`{"error": {"message": ...}}` when the service sent it, else the start of the body."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]
