"""The analytics routes of the read API (ARCHITECTURE §10): thin, over plain query functions.

Every route is sync, so FastAPI runs it in its thread pool and a ClickHouse call (under the
shared client's lock) never blocks the event loop. Who may call which path is decided in
one place before any route runs (`ingest.api.auth`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from ingest.api.anomalies import anomalies, parse_severities
from ingest.api.audit import audit_entries
from ingest.api.budgets import MAX_HISTORY, budgets
from ingest.api.drift import drift_reports
from ingest.api.enforcement import current_enforcement, enforcement_history
from ingest.api.errors import InvalidParameter
from ingest.api.focus import focus_filename, focus_rows, parse_focus
from ingest.api.operations import operations
from ingest.api.showback import parse_bound
from ingest.api.timeseries import parse_timeseries, run_timeseries
from meterline.warehouse import SharedClient
from schemas.api.read import (
    AnomaliesResponse,
    AuditKind,
    AuditResponse,
    BudgetsResponse,
    DriftResponse,
    EnforcementResponse,
    OperationsResponse,
    TimeseriesResponse,
)
from schemas.enforcement import HistoryAction

__all__ = ["MAX_ROWS", "router"]

router = APIRouter()

MAX_ROWS = 1000
From = Annotated[str | None, Query(alias="from")]
Limit = Annotated[int, Query(ge=1, le=MAX_ROWS)]


def _client(request: Request) -> SharedClient:
    return request.app.state.client


def _range(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    start_at = parse_bound("from", start, is_end=False)
    end_at = parse_bound("to", end, is_end=True)
    if start_at is not None and end_at is not None and start_at >= end_at:
        raise InvalidParameter("to", "'to' must be after 'from'")
    return start_at, end_at


def _present(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value is not None}


@router.get(
    "/api/showback/timeseries", response_model=TimeseriesResponse, response_model_by_alias=True
)
def showback_timeseries(
    request: Request,
    from_: From = None,
    to: str | None = None,
    by: str | None = None,
    granularity: str = "auto",
    top: int = 10,
    org: str | None = None,
    team: str | None = None,
    project: str | None = None,
    key: str | None = None,
    user: str | None = None,
    model: str | None = None,
    provider: str | None = None,
) -> TimeseriesResponse:
    filters = dict(org=org, team=team, project=project, key=key, user=user, model=model)
    query = parse_timeseries(by, granularity, from_, to, {**filters, "provider": provider}, top)
    return run_timeseries(_client(request), query)


@router.get("/api/budgets", response_model=BudgetsResponse)
def budgets_(
    request: Request,
    budget_id: str | None = None,
    from_: From = None,
    to: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 1000,
) -> BudgetsResponse:
    start, end = _range(from_, to)
    return budgets(
        _client(request),
        now=datetime.now(UTC),
        budget_id=budget_id,
        start=start,
        end=end,
        limit=limit,
    )


@router.get("/api/anomalies", response_model=AnomaliesResponse)
def anomalies_(
    request: Request,
    from_: From = None,
    to: str | None = None,
    kind: str | None = None,
    subject: str | None = None,
    severity: str | None = None,
    limit: Limit = 100,
) -> AnomaliesResponse:
    start, end = _range(from_, to)
    return anomalies(
        _client(request),
        start=start,
        end=end,
        kind=kind,
        subject=subject,
        severities=parse_severities(severity),
        limit=limit,
    )


@router.get("/api/enforcement", response_model=EnforcementResponse)
def enforcement_current(
    request: Request, subject: str | None = None, source: str | None = None
) -> EnforcementResponse:
    return current_enforcement(
        _client(request), now=datetime.now(UTC), subject=subject, source=source
    )


@router.get("/api/enforcement/history", response_model=EnforcementResponse)
def enforcement_history_(
    request: Request,
    from_: From = None,
    to: str | None = None,
    subject: str | None = None,
    source: str | None = None,
    action: HistoryAction | None = None,
    limit: Limit = 100,
) -> EnforcementResponse:
    start, end = _range(from_, to)
    return enforcement_history(
        _client(request),
        start=start,
        end=end,
        subject=subject,
        source=source,
        action=action,
        limit=limit,
    )


@router.get("/api/audit", response_model=AuditResponse)
def audit(
    request: Request,
    from_: From = None,
    to: str | None = None,
    kind: AuditKind | None = None,
    subject: str | None = None,
    who: str | None = None,
    limit: Limit = 200,
) -> AuditResponse:
    """Every control change and enforcement decision (lifts included), newest first."""
    start, end = _range(from_, to)
    return audit_entries(
        _client(request), start=start, end=end, kind=kind, subject=subject, who=who, limit=limit
    )


@router.get("/api/drift", response_model=DriftResponse)
def drift(
    request: Request,
    from_: From = None,
    to: str | None = None,
    scope: str | None = None,
    metric: str | None = None,
    drifted: bool | None = None,
    limit: Limit = 100,
) -> DriftResponse:
    start, end = _range(from_, to)
    return drift_reports(
        _client(request),
        start=start,
        end=end,
        scope=scope,
        metric=metric,
        drifted=drifted,
        limit=limit,
    )


@router.get("/api/operations", response_model=OperationsResponse, response_model_by_alias=True)
def operations_(
    request: Request,
    from_: From = None,
    to: str | None = None,
    org: str | None = None,
    team: str | None = None,
    project: str | None = None,
    key: str | None = None,
    model: str | None = None,
    provider: str | None = None,
) -> OperationsResponse:
    start, end = _range(from_, to)
    filters = _present(org=org, team=team, project=project, key=key, model=model, provider=provider)
    return operations(_client(request), start=start, end=end, filters=filters)


@router.get("/api/export/focus", response_class=StreamingResponse)
def export_focus(
    request: Request,
    from_: From = None,
    to: str | None = None,
    org: str | None = None,
    team: str | None = None,
    project: str | None = None,
    key: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    user: str | None = None,  # not in spend_daily: rejected by name rather than ignored
) -> StreamingResponse:
    filters = dict(org=org, team=team, project=project, key=key, model=model, provider=provider)
    query = parse_focus(from_, to, {**filters, "user": user})
    return StreamingResponse(
        focus_rows(_client(request), query),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{focus_filename(query)}"'},
    )
