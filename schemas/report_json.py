"""The envelope shared by the internal reports that every instance reads and skips its own
of (rate-usage, llmjacking-peers): a JSON object with the sender's id and `at`."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["load_report"]


def load_report(value: bytes, sender: str) -> tuple[dict[str, Any], str, float]:
    """(the object, the sender's id capped at 128 characters, `at`), or ValueError naming
    what is wrong."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get(sender), str):
        raise ValueError(f"expected an object with a {sender} id")
    at = data.get("at")
    if type(at) not in (int, float):
        raise ValueError("expected `at`, the unix time it was sent")
    return data, data[sender][:128], float(at)
