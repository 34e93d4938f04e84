"""Typed clients of ingest's read API (ARCHITECTURE §10): `ReadClient` (sync: the
dashboards) and `AsyncReadClient` (async: the processors' budget reconcile and recost).

They live in `meterline/` because services never import each other: ingest serves this
API, dashboards and processors call it, and all may import `meterline`. The answers are
TypedDicts mirroring `ingest/api/models.py` as it arrives on the wire (times are ISO
strings, money decimal strings): plain dicts at run time, which the dashboards' frames
are built from, with their shape written down for the type checker. Both clients share one
auth rule, timeout, retry and error translation (`meterline.clients._http`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime
from typing import Any, Literal, TypedDict

import httpx

from meterline.clients._http import (
    async_client,
    json_body,
    sync_client,
    translate_transport_errors,
)
from meterline.clients.errors import ApiError
from meterline.settings import Settings
from schemas import budgets
from schemas.enforcement import HistoryAction
from schemas.severity import Severity

__all__ = [
    "AnomaliesResponse",
    "AsyncReadClient",
    "BudgetsResponse",
    "DriftResponse",
    "EnforcementResponse",
    "HealthResponse",
    "OperationsResponse",
    "ReadClient",
    "Role",
    "ShowbackResponse",
    "SpendResponse",
    "TimeseriesResponse",
    "UncostedPage",
    "read_token",
]

# The read API's roles (ingest.api.auth): finance sees spend and budgets, security the
# rest, admin everything.
Role = Literal["finance", "security", "admin"]


def read_token(settings: Settings, role: Role) -> str | None:
    """The role's configured token, else admin's (which may read anything); None when no
    read token is configured (the embedded read API is then open on the loopback)."""
    secret = getattr(settings, f"read_token_{role}") or settings.read_token_admin
    return secret.get_secret_value() or None if secret is not None else None


# --- answers (the wire form of ingest/api/models.py) --------------------------------------

_Window = TypedDict("_Window", {"from": str | None, "to": str | None})  # `to` exclusive


class ShowbackTotals(TypedDict):
    cost_usd: str
    input_tokens: int
    output_tokens: int
    requests: int
    unpriced_requests: int


class ShowbackRow(ShowbackTotals, total=False):
    org: str | None
    team: str | None
    project: str | None
    key: str | None
    user: str | None
    model: str | None
    provider: str | None
    day: str | None
    hour: str | None
    previous_cost_usd: str | None
    change_usd: str | None
    change_pct: float | None


class ShowbackComparison(_Window):
    totals: ShowbackTotals
    change_usd: str
    change_pct: float | None
    movers: list[ShowbackRow]


class ShowbackResponse(_Window):
    group_by: list[str]
    source: Literal["spend_daily", "costs"]
    rows: list[ShowbackRow]
    totals: ShowbackTotals
    previous: ShowbackComparison | None


class TimeseriesPoint(TypedDict):
    t: str
    group: str | None
    cost_usd: str
    input_tokens: int
    output_tokens: int
    requests: int


class TimeseriesResponse(_Window):
    granularity: Literal["day", "hour"]
    by: str | None
    source: Literal["spend_daily", "costs"]
    series: list[str]
    points: list[TimeseriesPoint]
    totals: ShowbackTotals


class BudgetStatePoint(TypedDict):
    ts: str
    period_start: str
    period_end: str
    spent_usd: str
    limit_usd: str
    percent_used: float
    burn_rate_usd_per_hour: str
    projected_exhaustion: str | None
    status: budgets.BudgetStatus


class BudgetStatus(TypedDict):
    budget_id: str
    subject: str
    period: str
    limit_usd: str
    soft_pct: float | None
    action_on_hard: str | None
    state: BudgetStatePoint | None


class BudgetsResponse(TypedDict):
    count: int
    budgets: list[BudgetStatus]
    history: list[BudgetStatePoint] | None


class AnomalyRow(TypedDict):
    anomaly_id: str
    ts: str
    kind: str
    subject: str
    score: float
    severity: Severity
    signals: list[str]
    evidence: dict[str, Any]
    recommended_action: str


class AnomaliesResponse(TypedDict):
    count: int
    anomalies: list[AnomalyRow]


class DecisionRow(TypedDict):
    event_id: str
    ts: str
    subject: str
    action: HistoryAction
    reason: str
    source: str
    rpm: int | None
    expires_at: str | None
    decided_at: str
    anomaly_id: str | None
    decided_by: str | None


class EnforcementResponse(TypedDict):
    count: int
    decisions: list[DecisionRow]


class DriftRow(TypedDict):
    event_id: str
    ts: str
    scope: str
    metric: str
    statistic: str
    value: float
    threshold: float
    drifted: bool
    window_start: str
    window_end: str
    reference_start: str | None
    reference_end: str | None


class DriftResponse(TypedDict):
    count: int
    reports: list[DriftRow]


class OperationsResponse(_Window):
    totals: dict[str, Any]  # ModelOperations: latency percentiles, errors, tokens
    models: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    guardrails: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]


class HealthResponse(TypedDict):
    status: Literal["ok", "degraded"]
    clickhouse_reachable: bool
    database: str
    sink: dict[str, Any] | None
    otlp: dict[str, Any] | None


class SpendResponse(TypedDict):
    subject: str
    start: str
    end: str  # exclusive
    cost_usd: str  # exact decimal
    requests: int
    as_of: str | None  # every cost with request_ts <= as_of is counted; None: none stored


class UncostedPage(TypedDict):
    start: str
    end: str
    requests: list[dict[str, Any]]  # RequestEvent JSON
    next_cursor: str | None


# --- query building, shared by both clients ---------------------------------------------


def _dates(start: date | None, end: date | None) -> dict[str, str]:
    # A plain date as `to` includes that whole day (read API convention).
    bounds = {"from": start, "to": end}
    return {name: value.isoformat() for name, value in bounds.items() if value is not None}


def _present(values: Mapping[str, str | None] | None) -> dict[str, str]:
    return {name: value for name, value in (values or {}).items() if value}


Filters = Mapping[str, str | None]


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

    def _json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return json_body(self._get(path, params))

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
        answer: ShowbackResponse = self._json("/api/showback", params)
        return answer

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
        answer: TimeseriesResponse = self._json("/api/showback/timeseries", params)
        return answer

    def focus_csv(self, start: date, end: date, filters: Filters | None = None) -> bytes:
        """The FinOps FOCUS export, as CSV bytes."""
        return self._get("/api/export/focus", {**_dates(start, end), **_present(filters)}).content

    def budgets(self, budget_id: str | None = None) -> BudgetsResponse:
        """Every budget with its latest state; with `budget_id`, also its history."""
        answer: BudgetsResponse = self._json("/api/budgets", _present({"budget_id": budget_id}))
        return answer

    # --- security and operations ------------------------------------------------------

    def anomalies(
        self, start: date | None, end: date | None, subject: str | None = None, limit: int = 1000
    ) -> AnomaliesResponse:
        params = {**_dates(start, end), **_present({"subject": subject}), "limit": limit}
        answer: AnomaliesResponse = self._json("/api/anomalies", params)
        return answer

    def enforcement(self, subject: str | None = None) -> EnforcementResponse:
        answer: EnforcementResponse = self._json("/api/enforcement", _present({"subject": subject}))
        return answer

    def enforcement_history(
        self, start: date | None, end: date | None, subject: str | None = None, limit: int = 200
    ) -> EnforcementResponse:
        params = {**_dates(start, end), **_present({"subject": subject}), "limit": limit}
        answer: EnforcementResponse = self._json("/api/enforcement/history", params)
        return answer

    def drift(self, start: date | None, end: date | None, limit: int = 200) -> DriftResponse:
        answer: DriftResponse = self._json("/api/drift", {**_dates(start, end), "limit": limit})
        return answer

    def operations(
        self, start: date | None, end: date | None, filters: Filters | None = None
    ) -> OperationsResponse:
        params = {**_dates(start, end), **_present(filters)}
        answer: OperationsResponse = self._json("/api/operations", params)
        return answer

    def health(self) -> HealthResponse:
        """Ingest's /healthz (sink progress); its 503 (degraded) still carries the body."""
        try:
            answer: HealthResponse = self._json("/healthz")
        except ApiError as exc:
            if exc.response is None or not exc.response.is_server_error:
                raise
            answer = json_body(exc.response)
        return answer


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

    async def _json(self, path: str, params: Mapping[str, Any]) -> Any:
        with translate_transport_errors(self.base_url):
            response = await self._http.get(path, params=params)
        return json_body(response)

    async def spend(self, subject: str, start: datetime, end: datetime) -> SpendResponse:
        """What `subject` spent in [start, end), exact, up to the answer's `as_of`."""
        params = {"subject": subject, "from": start.isoformat(), "to": end.isoformat()}
        answer: SpendResponse = await self._json("/api/spend", params)
        return answer

    async def uncosted_pages(
        self, *, older_than_s: float, within_s: float, page_size: int = 1000
    ) -> AsyncIterator[UncostedPage]:
        """Pages of requests stored more than `older_than_s` ago (and less than `within_s`)
        with no cost, oldest first, following the cursor to the end of the window."""
        params: dict[str, Any] = {
            "older_than_s": older_than_s,
            "within_s": within_s,
            "limit": page_size,
        }
        while True:
            page: UncostedPage = await self._json("/api/spend/uncosted", params)
            yield page
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]
