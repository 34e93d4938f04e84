"""Typed clients of ingest's read API (ARCHITECTURE §10): `ReadClient` (sync: the
dashboards) and `AsyncReadClient` (async: the processors' budget reconcile and recost).

They live in `meterline/` because services never import each other: ingest serves this
API, dashboards and processors call it, and all may import `meterline`. Each answer is
parsed into the `schemas.api.read` model the route declares as its `response_model`, so
the contract is written once: money stays an exact decimal string, times are aware UTC
datetimes. A caller that wants the wire form (the dashboards build frames from plain
dicts) takes `answer.model_dump(mode="json", by_alias=True)`. Both clients share one auth
rule, timeout, retry and error translation (`meterline.clients._http`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

from meterline.clients._http import (
    async_client,
    parse_body,
    sync_client,
    translate_transport_errors,
)
from meterline.clients.errors import ApiError
from meterline.settings import Settings
from schemas.api.read import (
    AnomaliesResponse,
    AuditResponse,
    BudgetsResponse,
    DriftResponse,
    EnforcementResponse,
    HealthResponse,
    OperationsResponse,
    RequestsResponse,
    ShowbackResponse,
    SpendResponse,
    TimeseriesResponse,
    UncostedResponse,
)

__all__ = ["AsyncReadClient", "ReadClient", "Role", "read_token"]

# The read API's roles (ingest.api.auth): finance sees spend and budgets, security the
# rest, admin everything.
Role = Literal["finance", "security", "admin"]


def read_token(settings: Settings, role: Role) -> str | None:
    """The role's configured token, else admin's (which may read anything); None when no
    read token is configured (the embedded read API is then open on the loopback)."""
    secret = getattr(settings, f"read_token_{role}") or settings.read_token_admin
    return secret.get_secret_value() or None if secret is not None else None


# --- query building, shared by both clients ---------------------------------------------


def _dates(start: date | None, end: date | None) -> dict[str, str]:
    # A plain date as `to` includes that whole day (read API convention).
    bounds = {"from": start, "to": end}
    return {name: value.isoformat() for name, value in bounds.items() if value is not None}


def _present(values: Mapping[str, str | None] | None) -> dict[str, str]:
    return {name: value for name, value in (values or {}).items() if value}


Filters = Mapping[str, str | None]
_Answer = TypeVar("_Answer", bound=BaseModel)


class ReadClient:
    """The read API over one `httpx.Client` (the dashboards' one door to data).

    **Parameters:** `base_url` of ingest; `token`: a read role's token (None: send none);
    `timeout` and `transport` as in httpx. Raises `ApiUnreachable` or `ApiError`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: httpx.Timeout | float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = sync_client(self.base_url, token, timeout=timeout, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings, role: Role) -> ReadClient:
        return cls(settings.resolved_read_api_url, read_token(settings, role))

    def __enter__(self) -> ReadClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        with translate_transport_errors(self.base_url):
            return self._http.get(path, params=params)

    def _answer(
        self, path: str, model: type[_Answer], params: Mapping[str, Any] | None = None
    ) -> _Answer:
        return parse_body(self._get(path, params), model)

    # --- finance ---------------------------------------------------------------------

    def showback(
        self,
        group_by: list[str],
        start: date | None,
        end: date | None,
        filters: Filters | None = None,
        *,
        compare: bool = False,
    ) -> ShowbackResponse:
        params: dict[str, Any] = {**_dates(start, end), **_present(filters)}
        if group_by:
            params["group_by"] = ",".join(group_by)
        if compare:
            params["compare"] = "previous"
        return self._answer("/api/showback", ShowbackResponse, params)

    def timeseries(
        self,
        by: str | None,
        start: date | None,
        end: date | None,
        filters: Filters | None = None,
        *,
        granularity: str = "auto",
        top: int = 10,
    ) -> TimeseriesResponse:
        params: dict[str, Any] = {**_dates(start, end), **_present(filters)}
        params.update(granularity=granularity, top=top)
        if by:
            params["by"] = by
        return self._answer("/api/showback/timeseries", TimeseriesResponse, params)

    def focus_csv(self, start: date, end: date, filters: Filters | None = None) -> bytes:
        """The FinOps FOCUS export, as CSV bytes."""
        return self._get("/api/export/focus", {**_dates(start, end), **_present(filters)}).content

    def budgets(self, budget_id: str | None = None) -> BudgetsResponse:
        """Every budget with its latest state; with `budget_id`, also its history."""
        return self._answer("/api/budgets", BudgetsResponse, _present({"budget_id": budget_id}))

    # --- security and operations ------------------------------------------------------

    def anomalies(
        self, start: date | None, end: date | None, subject: str | None = None, limit: int = 1000
    ) -> AnomaliesResponse:
        params = {**_dates(start, end), **_present({"subject": subject}), "limit": limit}
        return self._answer("/api/anomalies", AnomaliesResponse, params)

    def enforcement(self, subject: str | None = None) -> EnforcementResponse:
        return self._answer("/api/enforcement", EnforcementResponse, _present({"subject": subject}))

    def enforcement_history(
        self, start: date | None, end: date | None, subject: str | None = None, limit: int = 200
    ) -> EnforcementResponse:
        params = {**_dates(start, end), **_present({"subject": subject}), "limit": limit}
        return self._answer("/api/enforcement/history", EnforcementResponse, params)

    def audit(
        self,
        start: date | None,
        end: date | None,
        *,
        kind: str | None = None,
        subject: str | None = None,
        limit: int = 200,
    ) -> AuditResponse:
        """Control changes and enforcement decisions, newest first (admin, security)."""
        params = {**_dates(start, end), **_present({"kind": kind, "subject": subject})}
        return self._answer("/api/audit", AuditResponse, {**params, "limit": limit})

    def drift(self, start: date | None, end: date | None, limit: int = 200) -> DriftResponse:
        return self._answer("/api/drift", DriftResponse, {**_dates(start, end), "limit": limit})

    def operations(
        self, start: date | None, end: date | None, filters: Filters | None = None
    ) -> OperationsResponse:
        params = {**_dates(start, end), **_present(filters)}
        return self._answer("/api/operations", OperationsResponse, params)

    def requests(self, *, key: str | None = None, limit: int = 100) -> RequestsResponse:
        """The newest requests, of one key if given (the dashboards read a key's owner here)."""
        return self._answer(
            "/api/requests", RequestsResponse, {**_present({"key": key}), "limit": limit}
        )

    def health(self) -> HealthResponse:
        """Ingest's /healthz (sink progress); its 503 (degraded) still carries the body."""
        try:
            return self._answer("/healthz", HealthResponse)
        except ApiError as exc:
            if exc.response is None or not exc.response.is_server_error:
                raise
            return parse_body(exc.response, HealthResponse)


class AsyncReadClient:
    """The read API over one `httpx.AsyncClient`, for the processors' event loop: the
    spend a budget period holds (reconcile) and the requests stored without a cost
    (recost). Same parameters and errors as `ReadClient`; use it as `async with`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: httpx.Timeout | float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = async_client(self.base_url, token, timeout=timeout, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings, role: Role = "finance") -> AsyncReadClient:
        return cls(settings.resolved_read_api_url, read_token(settings, role))

    async def __aenter__(self) -> AsyncReadClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _answer(self, path: str, model: type[_Answer], params: Mapping[str, Any]) -> _Answer:
        with translate_transport_errors(self.base_url):
            response = await self._http.get(path, params=params)
        return parse_body(response, model)

    async def spend(
        self, subject: str, start: datetime, end: datetime, recent_from: datetime | None = None
    ) -> SpendResponse:
        """What `subject` spent in [start, end), exact, up to the answer's `as_of`; with
        `recent_from`, the costs from then on one by one (`SpendResponse.recent`)."""
        params = {"subject": subject, "from": start.isoformat(), "to": end.isoformat()}
        if recent_from is not None:
            params["recent_from"] = recent_from.isoformat()
        return await self._answer("/api/spend", SpendResponse, params)

    async def uncosted_pages(
        self, *, older_than_s: float, within_s: float, page_size: int = 1000
    ) -> AsyncIterator[UncostedResponse]:
        """Pages of requests stored more than `older_than_s` ago (and less than `within_s`)
        with no cost, oldest first, following the cursor to the end of the window."""
        params: dict[str, Any] = {
            "older_than_s": older_than_s,
            "within_s": within_s,
            "limit": page_size,
        }
        while True:
            page = await self._answer("/api/spend/uncosted", UncostedResponse, params)
            yield page
            if not page.next_cursor:
                return
            params["cursor"] = page.next_cursor
