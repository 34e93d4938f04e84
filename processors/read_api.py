"""How the processors reach ingest's read API (they never open ClickHouse themselves)."""

from __future__ import annotations

import httpx

from meterline.settings import Settings

__all__ = ["read_api_client", "spend_token"]


def spend_token(settings: Settings) -> str | None:
    """The read API token that may read spend: admin, else finance (both can)."""
    token = settings.read_token_admin or settings.read_token_finance
    return token.get_secret_value() if token is not None else None


def read_api_client(settings: Settings, timeout_s: float = 10.0) -> httpx.AsyncClient:
    token = spend_token(settings)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=settings.resolved_read_api_url, timeout=timeout_s, headers=headers
    )
