"""The dashboards' one door to data: the ingest read API, over HTTP (ARCHITECTURE §6)."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

__all__ = ["ReadApiError", "fetch_showback"]


class ReadApiError(RuntimeError):
    """The read API could not answer; the message tells the user what to check."""


def fetch_showback(
    base_url: str, group_by: list[str], start: date, end: date, timeout_s: float = 10.0
) -> dict[str, Any]:
    params = {"group_by": ",".join(group_by), "from": start.isoformat(), "to": end.isoformat()}
    try:
        response = httpx.get(f"{base_url}/api/showback", params=params, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ReadApiError(
            f"The read API at {base_url} is unreachable ({exc.__class__.__name__}). "
            "Is `meterline ingest` (or `meterline up`) running? Set METERLINE_READ_API_URL "
            "if it runs elsewhere."
        ) from exc
    if response.status_code != 200:
        raise ReadApiError(f"The read API answered {response.status_code}: {response.text}")
    return dict(response.json())
