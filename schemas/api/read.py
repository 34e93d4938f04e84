"""Answers of ingest's read API (ARCHITECTURE §10), served by `ingest.api` and parsed by
`meterline.clients.ReadClient` / `AsyncReadClient`: one model per answer, for both sides.

Money is a decimal string, exact to 18 places (`Decimal(answer.cost_usd)` keeps it so);
times are timezone-aware UTC datetimes (ISO 8601 on the wire).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas import budgets
from schemas.enforcement import HistoryAction
from schemas.events.v1 import RequestEvent
from schemas.severity import Severity

__all__ = [
    "AnomaliesResponse",
    "AnomalyRow",
    "AuditEntry",
    "AuditKind",
    "AuditResponse",
    "BudgetStatePoint",
    "BudgetStatus",
    "BudgetsResponse",
    "CacheOperations",
    "DeadLetterCount",
    "DecisionRow",
    "DeploymentOperations",
    "DriftResponse",
    "DriftRow",
    "EnforcementResponse",
    "ErrorCount",
    "GuardrailCount",
    "HealthResponse",
    "ModelOperations",
    "OperationsResponse",
    "RequestRow",
    "RequestsResponse",
    "ShowbackComparison",
    "ShowbackResponse",
    "ShowbackRow",
    "ShowbackTotals",
    "SpendResponse",
    "TimeseriesPoint",
    "TimeseriesResponse",
    "UncostedResponse",
]


class ShowbackTotals(BaseModel):
    cost_usd: str
    input_tokens: int
    output_tokens: int
    requests: int
    unpriced_requests: int
    # What response-cache hits saved (their answers' price, not charged) and how many.
    saved_usd: str = "0"
    cache_hits: int = 0
    # Refused by the gateway before any provider saw them: counted here, never as spend
    # and never as unpriced (they cost exactly 0).
    rejected_requests: int = 0


class ShowbackRow(ShowbackTotals):
    """One group; the attribution fields not in `group_by` are null."""

    org: str | None = None
    team: str | None = None
    project: str | None = None
    key: str | None = None
    user: str | None = None
    model: str | None = None
    provider: str | None = None
    day: date | None = None
    hour: datetime | None = None
    # With compare=previous: the same group over the previous period of the same length.
    previous_cost_usd: str | None = None
    change_usd: str | None = None
    change_pct: float | None = None  # null when the previous cost was zero


class ShowbackComparison(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None  # exclusive: the current period's start
    totals: ShowbackTotals
    change_usd: str
    change_pct: float | None
    movers: list[ShowbackRow]  # largest absolute change first, groups gone to zero included


class ShowbackResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    group_by: list[str]
    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None  # exclusive
    source: Literal["spend_daily", "costs"]
    rows: list[ShowbackRow]
    totals: ShowbackTotals
    previous: ShowbackComparison | None = None


class TimeseriesPoint(BaseModel):
    t: datetime  # start of the day or hour (UTC)
    group: str | None  # value of `by`; "(other)" folds the smaller groups; null without `by`
    cost_usd: str
    input_tokens: int
    output_tokens: int
    requests: int


class TimeseriesResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None  # exclusive
    granularity: Literal["day", "hour"]
    by: str | None
    source: Literal["spend_daily", "costs"]
    series: list[str]  # groups by total cost, largest first
    points: list[TimeseriesPoint]
    totals: ShowbackTotals


class BudgetStatePoint(BaseModel):
    ts: datetime
    period_start: datetime
    period_end: datetime
    spent_usd: str
    limit_usd: str
    percent_used: float
    burn_rate_usd_per_hour: str
    projected_exhaustion: datetime | None
    status: budgets.BudgetStatus


class BudgetStatus(BaseModel):
    """A budget with its latest state (null fields: no state in the current period yet)."""

    budget_id: str
    subject: str
    period: str
    limit_usd: str
    soft_pct: float | None  # null: the budget's record is not in the warehouse
    action_on_hard: str | None
    state: BudgetStatePoint | None


class BudgetsResponse(BaseModel):
    count: int
    budgets: list[BudgetStatus]
    history: list[BudgetStatePoint] | None = None  # with ?budget_id=, oldest first


class AnomalyRow(BaseModel):
    anomaly_id: str
    ts: datetime
    kind: str
    subject: str
    score: float
    severity: Severity
    signals: list[str]
    evidence: dict[str, Any]
    recommended_action: str


class AnomaliesResponse(BaseModel):
    count: int
    anomalies: list[AnomalyRow]


class DecisionRow(BaseModel):
    event_id: str
    ts: datetime
    subject: str
    action: HistoryAction
    reason: str
    source: str  # '*' on a lift of every source
    rpm: int | None
    expires_at: datetime | None
    decided_at: datetime
    anomaly_id: str | None
    decided_by: str | None = None  # the admin API's actor, or the detector's stage


AuditKind = Literal["key", "budget", "policy", "ingest_token", "enforcement"]


class AuditEntry(BaseModel):
    """One control change or enforcement decision: who did what to which subject, when."""

    ts: datetime
    kind: AuditKind
    # key: create|update|revoke; budget, policy, ingest_token: create|update|delete;
    # enforcement: block|throttle|allow|lift
    action: str
    record_id: str  # key, budget, policy or token id; a decision's event_id
    subject: str
    org: str | None = None
    who: str | None = None  # the admin API's actor, or the detector's stage
    source: str | None = None  # enforcement only: budget|llmjacking|agent_loop|guardrail|manual
    reason: str | None = None  # enforcement only
    before: dict[str, Any] | None = None  # the previous version; null when there was none
    after: dict[str, Any] | None = None


class AuditResponse(BaseModel):
    count: int
    entries: list[AuditEntry]


class EnforcementResponse(BaseModel):
    count: int
    decisions: list[DecisionRow]


class DriftRow(BaseModel):
    event_id: str
    ts: datetime
    scope: str
    metric: str
    statistic: str
    value: float
    threshold: float
    drifted: bool
    window_start: datetime
    window_end: datetime
    reference_start: datetime | None
    reference_end: datetime | None


class DriftResponse(BaseModel):
    count: int
    reports: list[DriftRow]


class ModelOperations(BaseModel):
    """Latency and errors of one model at one provider (both null: all traffic)."""

    model: str | None
    provider: str | None
    requests: int
    errors: int  # status >= 400
    error_rate: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    ttft_p50_ms: float | None
    input_tokens: int
    output_tokens: int
    output_tokens_per_s: float | None  # over successful requests' total latency
    # Refused by the gateway before any provider saw them (401/403/413/429, no model...):
    # part of `errors`, and never spend.
    rejected: int = 0


class DeploymentOperations(BaseModel):
    """One routing deployment's tries over the range. A request that needed more than one
    try counts each of its attempts against the deployment tried; one served (or failed)
    at its first try counts one try against its `deployment`."""

    deployment: str
    provider: str
    groups: list[str]  # the model groups it was tried in (known only from multi-try requests)
    requests: int  # requests it answered: the last try of each, successful or not
    tries: int
    errors: int  # tries that failed: no HTTP answer, or status >= 400
    error_rate: float  # errors / tries
    retries: int  # tries after the first within the same group of a request
    fallbacks_from: int  # requests that left its group for another after trying it
    fallbacks_to: int  # requests it answered after falling back from another group
    latency_p50_ms: float | None  # of its tries
    latency_p95_ms: float | None


class ErrorCount(BaseModel):
    error_type: str
    status_code: int
    count: int


class GuardrailCount(BaseModel):
    guardrail: str
    category: str
    action: str
    count: int


class DeadLetterCount(BaseModel):
    original_topic: str
    stage: str
    count: int


class OperationsResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None  # exclusive
    totals: ModelOperations
    models: list[ModelOperations]
    errors: list[ErrorCount]
    guardrails: list[GuardrailCount]
    dead_letters: list[DeadLetterCount]
    # Per routing deployment (issue 12); absent from an older server's answer.
    deployments: list[DeploymentOperations] = Field(default_factory=list)
    # The response cache over the range (issue 16); absent from an older server's answer.
    cache: CacheOperations | None = None


class CacheOperations(BaseModel):
    """Requests the response cache looked up (cache on for them, not opted out), and how
    many it answered exactly or by a similar prompt; ratios over the lookups."""

    lookups: int
    hits: int
    semantic_hits: int
    hit_ratio: float | None  # (hits + semantic hits) / lookups; null without lookups
    semantic_hit_ratio: float | None


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
    # What served it (routing): the deployment, the API spoken to it, and, when there was
    # more than one try, each try's deployment and status (0: no HTTP answer).
    deployment: str = ""
    upstream_api: str = ""
    attempt_deployments: list[str] = Field(default_factory=list)
    attempt_statuses: list[int] = Field(default_factory=list)
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
    otlp: dict[str, Any] | None = None  # OTLP receiver counters (ingest.otlp.OtlpStats)


class SpendItem(BaseModel):
    """One stored cost of a subject, for merging with costs counted elsewhere by event id."""

    event_id: str
    request_ts: datetime
    cost_usd: str  # exact decimal


class SpendResponse(BaseModel):
    """What one subject spent in [start, end), as the warehouse knows it (`GET /api/spend`).

    With `recent_from`: `cost_usd` and `requests` cover [start, recent_from) and `recent`
    lists each stored cost of [recent_from, end), so a reader can merge it by event id
    with the costs it counted itself."""

    subject: str
    start: datetime
    end: datetime  # exclusive
    cost_usd: str  # exact decimal
    requests: int
    # Every cost with request_ts <= as_of is included (None: no cost stored yet); with
    # `recent_from`, as_of is recent_from (the sum covers the costs before it).
    as_of: datetime | None
    recent: list[SpendItem] | None = None


class UncostedResponse(BaseModel):
    """A page of `GET /api/spend/uncosted`: requests stored in [start, end) with no cost
    row, oldest first; pass `next_cursor` as `cursor` for the next page (None: last one)."""

    start: datetime
    end: datetime
    requests: list[RequestEvent]
    next_cursor: str | None = None
