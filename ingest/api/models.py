"""Typed responses of the read API. Money is a decimal string, exact to 18 places."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "HealthResponse",
    "RequestRow",
    "RequestsResponse",
    "ShowbackResponse",
    "ShowbackRow",
    "ShowbackTotals",
]


class ShowbackTotals(BaseModel):
    cost_usd: str
    input_tokens: int
    output_tokens: int
    requests: int
    unpriced_requests: int


class ShowbackRow(ShowbackTotals):
    """One group; the attribution fields not in `group_by` are null."""

    org: str | None = None
    team: str | None = None
    project: str | None = None
    key: str | None = None
    model: str | None = None
    provider: str | None = None
    day: date | None = None


class ShowbackResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    group_by: list[str]
    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None  # exclusive
    source: Literal["spend_daily", "costs"]
    rows: list[ShowbackRow]
    totals: ShowbackTotals


class RequestRow(BaseModel):
    event_id: str
    ts: datetime
    request_id: str
    key_id: str
    org: str
    team: str
    project: str
    user: str
    provider: str
    model_requested: str
    model_used: str
    endpoint: str
    stream: bool
    status_code: int
    error_type: str
    latency_ms: float
    ttft_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: str | None  # null until the cost processor priced it
    priced: bool | None
    price_source: str | None = None  # genai-prices@<version> or override:<name>


class RequestsResponse(BaseModel):
    count: int
    requests: list[RequestRow]


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    clickhouse_reachable: bool
    database: str
    sink: dict[str, Any] | None = None
