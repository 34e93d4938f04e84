"""The dashboards' one door to data: the ingest read API, over HTTP (ARCHITECTURE §6).

Every page reads through `ReadApi`; none opens ClickHouse. Errors become `ReadApiError`
with a message that tells the reader what to run or which setting to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import httpx

from dashboards._http import error_message
from meterline.settings import Settings

__all__ = ["ReadApi", "ReadApiError", "Role"]

# The read API's roles the pages need: finance (showback, budgets), security (the rest).
Role = Literal["finance", "security"]


class ReadApiError(RuntimeError):
    """The read API could not answer; the message tells the user what to check."""


def _dates(start: date | None, end: date | None) -> dict[str, str]:
    # A plain date as `to` includes that whole day (read API convention).
    bounds = {"from": start, "to": end}
    return {name: value.isoformat() for name, value in bounds.items() if value is not None}


def _present(values: Mapping[str, str | None] | None) -> dict[str, str]:
    return {name: value for name, value in (values or {}).items() if value}


@dataclass(frozen=True)
class ReadApi:
    base_url: str
    role: Role = "finance"
    token: str | None = None
    timeout_s: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings, role: Role) -> ReadApi:
        """The role's token when one is configured, else admin's (which may read anything)."""
        secret = getattr(settings, f"read_token_{role}") or settings.read_token_admin
        token = secret.get_secret_value() if secret is not None else None
        return cls(settings.resolved_read_api_url.rstrip("/"), role, token or None)

    # --- transport -------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.get(
                self.base_url + path, params=params, headers=headers, timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise ReadApiError(
                f"The read API at {self.base_url} is unreachable ({exc.__class__.__name__}). "
                "Start it with `meterline up` (or `meterline ingest`), or set "
                "METERLINE_READ_API_URL to where it runs."
            ) from exc
        if response.status_code in (401, 403):
            raise ReadApiError(self._token_advice(path, response.status_code))
        if response.status_code != 200 and not (path == "/healthz" and response.is_server_error):
            raise ReadApiError(
                f"The read API answered {response.status_code} on {path}: {error_message(response)}"
            )
        return response

    def _token_advice(self, path: str, status: int) -> str:
        variable = f"METERLINE_READ_TOKEN_{self.role.upper()}"
        if status == 401:
            problem = "rejected the dashboards' token" if self.token else "requires a token"
        else:
            problem = f"does not let the configured token read {path}"
        return (
            f"The read API at {self.base_url} {problem}. Set {variable} (or "
            "METERLINE_READ_TOKEN_ADMIN) for `meterline dashboard` to the token ingest uses."
        )

    def _json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return dict(self._get(path, params).json())

    # --- finance ---------------------------------------------------------------------

    def showback(
        self,
        group_by: list[str],
        start: date | None,
        end: date | None,
        filters: Mapping[str, str | None] | None = None,
        *,
        compare: bool = False,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {**_dates(start, end), **_present(filters)}
        if group_by:
            params["group_by"] = ",".join(group_by)
        if compare:
            params["compare"] = "previous"
        return self._json("/api/showback", params)

    def timeseries(
        self,
        by: str | None,
        start: date | None,
        end: date | None,
        filters: Mapping[str, str | None] | None = None,
        *,
        granularity: str = "auto",
        top: int = 10,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {**_dates(start, end), **_present(filters)}
        params.update(granularity=granularity, top=top)
        if by:
            params["by"] = by
        return self._json("/api/showback/timeseries", params)

    def focus_csv(
        self, start: date, end: date, filters: Mapping[str, str | None] | None = None
    ) -> bytes:
        params = {**_dates(start, end), **_present(filters)}
        return self._get("/api/export/focus", params).content

    def budgets(self, budget_id: str | None = None) -> dict[str, Any]:
        return self._json("/api/budgets", {"budget_id": budget_id} if budget_id else None)

    # --- security and operations ------------------------------------------------------

    def anomalies(
        self, start: date | None, end: date | None, subject: str | None = None, limit: int = 1000
    ) -> dict[str, Any]:
        params = {**_dates(start, end), **_present({"subject": subject}), "limit": limit}
        return self._json("/api/anomalies", params)

    def enforcement(self, subject: str | None = None) -> dict[str, Any]:
        return self._json("/api/enforcement", _present({"subject": subject}))

    def enforcement_history(
        self, start: date | None, end: date | None, subject: str | None = None, limit: int = 200
    ) -> dict[str, Any]:
        params = {**_dates(start, end), **_present({"subject": subject}), "limit": limit}
        return self._json("/api/enforcement/history", params)

    def drift(self, start: date | None, end: date | None, limit: int = 200) -> dict[str, Any]:
        return self._json("/api/drift", {**_dates(start, end), "limit": limit})

    def operations(
        self,
        start: date | None,
        end: date | None,
        filters: Mapping[str, str | None] | None = None,
    ) -> dict[str, Any]:
        return self._json("/api/operations", {**_dates(start, end), **_present(filters)})

    def health(self) -> dict[str, Any]:
        """Ingest's /healthz (sink progress); a 503 still carries the body."""
        return self._json("/healthz")
