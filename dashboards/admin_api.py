"""The dashboards' one door to changes: the gateway admin API (ARCHITECTURE §9).

Only block and unblock are offered here; a human confirms each in the Security page first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from dashboards._http import error_message
from meterline.settings import Settings

__all__ = ["AdminApi", "AdminApiError"]


class AdminApiError(RuntimeError):
    """The admin API refused or could not be reached; the message says what to do."""


@dataclass(frozen=True)
class AdminApi:
    base_url: str
    token: str
    timeout_s: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings, token: str | None = None) -> AdminApi | None:
        """`token` typed in the UI wins over the configured (or `meterline up`'s) token;
        None when there is no token at all: the page then offers no actions."""
        if not token:
            secret = settings.resolved_admin_token
            token = secret.get_secret_value() if secret is not None else None
        if not token:
            return None
        return cls(settings.resolved_gateway_url.rstrip("/"), token)

    def block(self, subject: str, reason: str, for_seconds: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"subject": subject, "action": "block", "reason": reason}
        if for_seconds:
            body["for_seconds"] = for_seconds
        return self._call("POST", "/admin/enforcement", body)

    def unblock(self, subject: str) -> dict[str, Any]:
        """Lifts every source's decision on the subject, automatic ones included."""
        return self._call("DELETE", f"/admin/enforcement/{quote(subject, safe=':/@')}")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = httpx.request(
                method,
                self.base_url + path,
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise AdminApiError(
                f"The gateway admin API at {self.base_url} is unreachable "
                f"({exc.__class__.__name__}). Start it with `meterline up` (or `meterline "
                "gateway`), or set METERLINE_GATEWAY_URL to where it runs."
            ) from exc
        if response.status_code == 401:
            raise AdminApiError(
                "The gateway refused the admin token. Enter the token `meterline up` printed, "
                "or set METERLINE_ADMIN_TOKEN."
            )
        if response.status_code >= 300:
            raise AdminApiError(
                f"The gateway answered {response.status_code}: {error_message(response)}"
            )
        return dict(response.json())
