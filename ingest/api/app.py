"""`create_app`: the read API over one shared ClickHouse client (thin routes)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from ingest.api.auth import ReadAuthMiddleware, ReadTokens
from ingest.api.errors import InvalidParameter, install_error_handlers
from ingest.api.recent_requests import MAX_LIMIT, recent_requests
from ingest.api.routes import router
from ingest.api.showback import parse_bound, parse_showback, run_showback
from ingest.api.spend import spend_for_subject
from ingest.api.traces import TraceResponse, trace_spans
from ingest.api.uncosted import MAX_UNCOSTED_LIMIT, uncosted_requests
from ingest.sink.status import SinkStatus, SinkStatusGroup
from meterline.warehouse import SharedClient
from schemas.api.read import (
    HealthResponse,
    RequestsResponse,
    ShowbackResponse,
    SpendResponse,
    UncostedResponse,
)

__all__ = ["create_app"]


def create_app(
    client: SharedClient,
    status: SinkStatus | SinkStatusGroup | None = None,
    tokens: ReadTokens | None = None,
) -> FastAPI:
    """The ingest HTTP app (read API); `ingest.server` also mounts the OTLP receiver on it.

    `tokens`: the read API's role tokens; none configured leaves `/api/*` open."""
    app = FastAPI(title="Meterline ingest", version="1")
    app.state.client = client
    app.state.sink_status = status
    install_error_handlers(app)
    app.add_middleware(ReadAuthMiddleware, tokens=tokens or ReadTokens({}))
    app.include_router(router)

    def shared(request: Request) -> SharedClient:
        return request.app.state.client

    # Sync handlers: FastAPI runs them in its thread pool, so a ClickHouse call (under the
    # client lock) never blocks the event loop.
    @app.get("/healthz", response_model=HealthResponse)
    def healthz(request: Request) -> JSONResponse:
        reachable = shared(request).ping()
        sink = status.snapshot() if status is not None else None
        if sink is not None and sink.get("last_flush_at"):
            sink["last_flush_age_s"] = round(time.time() - sink["last_flush_at"], 3)
        healthy = reachable and (sink is None or sink.get("consecutive_failures", 0) == 0)
        otlp = getattr(request.app.state, "otlp_stats", None)
        body = HealthResponse(
            status="ok" if healthy else "degraded",
            clickhouse_reachable=reachable,
            database=client.database,
            sink=sink,
            otlp=otlp.snapshot() if otlp is not None else None,
        )
        return JSONResponse(
            status_code=200 if healthy else 503, content=body.model_dump(mode="json")
        )

    @app.get("/api/showback", response_model=ShowbackResponse, response_model_by_alias=True)
    def showback(
        request: Request,
        group_by: Annotated[list[str] | None, Query()] = None,
        from_: Annotated[str | None, Query(alias="from")] = None,
        to: Annotated[str | None, Query()] = None,
        org: str | None = None,
        team: str | None = None,
        project: str | None = None,
        key: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        user: str | None = None,
        compare: str | None = None,
    ) -> ShowbackResponse:
        query = parse_showback(
            group_by,
            from_,
            to,
            {
                "org": org,
                "team": team,
                "project": project,
                "key": key,
                "model": model,
                "provider": provider,
                "user": user,
            },
            compare,
        )
        return run_showback(shared(request), query)

    @app.get("/api/requests", response_model=RequestsResponse)
    def requests_(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
        key: str | None = None,
        org: str | None = None,
        since: Annotated[str | None, Query(description="ISO date or datetime")] = None,
        from_: Annotated[str | None, Query(alias="from")] = None,
        to: str | None = None,
        team: str | None = None,
        project: str | None = None,
        user: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        session: str | None = None,
        trace: str | None = None,
        status: Literal["ok", "error"] | None = None,
    ) -> RequestsResponse:
        start = parse_bound("from", from_, is_end=False) or parse_bound(
            "since", since, is_end=False
        )
        filters = dict(team=team, project=project, user=user, model=model, provider=provider)
        filters.update(session=session, trace=trace)
        return recent_requests(
            shared(request),
            limit=limit,
            key=key,
            org=org,
            since=start,
            until=parse_bound("to", to, is_end=True),
            filters={name: value for name, value in filters.items() if value is not None},
            status=status,
        )

    @app.get("/api/spend", response_model=SpendResponse)
    def spend(
        request: Request,
        subject: str,
        from_: Annotated[str, Query(alias="from")],
        to: str,
        recent_from: str | None = None,
    ) -> SpendResponse:
        start = parse_bound("from", from_, is_end=False)
        end = parse_bound("to", to, is_end=True)
        if start is None or end is None:
            raise InvalidParameter("from" if start is None else "to", "a time bound is required")
        recent = parse_bound("recent_from", recent_from, is_end=False) if recent_from else None
        return spend_for_subject(shared(request), subject, start, end, recent)

    @app.get("/api/spend/uncosted", response_model=UncostedResponse)
    def spend_uncosted(
        request: Request,
        older_than_s: Annotated[float, Query(ge=0, le=86_400)] = 120.0,
        within_s: Annotated[float, Query(gt=0, le=31 * 86_400)] = 86_400.0,
        limit: Annotated[int, Query(ge=1, le=MAX_UNCOSTED_LIMIT)] = 1000,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> UncostedResponse:
        return uncosted_requests(
            shared(request),
            older_than=timedelta(seconds=older_than_s),
            within=timedelta(seconds=within_s),
            limit=limit,
            cursor=cursor,
        )

    @app.get("/api/traces/{trace_id}", response_model=TraceResponse)
    def trace(request: Request, trace_id: str) -> TraceResponse:
        return trace_spans(shared(request), trace_id)

    return app
