"""Version 1 of every Meterline event and control record (ARCHITECTURE §4).

Producers validate strictly; consumers ignore unknown fields, so a newer producer never
breaks an older consumer. A breaking change is a new module (`v2.py`), never an edit.
Money is `Decimal` (serialized as a string); timestamps are UTC with millisecond precision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, TypeAdapter

from schemas.budgets import BudgetPeriod, BudgetStatus, HardLimitAction
from schemas.clickhouse import column as ch
from schemas.enforcement import DecisionSource, EnforcementAction
from schemas.ids import new_event_id
from schemas.policies import (
    AgentLoopMode,
    CacheMode,
    CacheStatus,
    GuardrailKind,
    GuardrailMode,
    LlmjackingMode,
)
from schemas.severity import Severity

__all__ = [
    "EVENT_ADAPTERS",
    "EVENT_MODELS",
    "POLICY_RECORD_MODELS",
    "SCHEMA_VERSION",
    "AgentLoopPolicyRecord",
    "Anomaly",
    "BudgetRecord",
    "BudgetState",
    "CachePolicyRecord",
    "CostEvent",
    "DeadLetter",
    "DriftReport",
    "EnforcementDecision",
    "Event",
    "GuardrailEvent",
    "GuardrailPolicyRecord",
    "GuardrailSummary",
    "IngestTokenRecord",
    "KeyRecord",
    "LlmjackingPolicyRecord",
    "PolicyRecord",
    "RequestEvent",
    "RouteAttempt",
    "SpanEvent",
    "ToolCall",
    "format_ts",
    "policy_record",
    "policy_record_json",
    "utc_now",
    "validate_produced",
]

SCHEMA_VERSION = 1

Money = Annotated[
    Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="json")
]


def utc_now() -> datetime:
    """Now, in UTC, truncated to the millisecond precision of the wire format."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_ts(value: datetime) -> str:
    """ISO-8601 UTC with millisecond precision, the wire format of every timestamp."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _as_utc(value: datetime) -> datetime:
    # Treat every naive timestamp as UTC (the chdb client returns naive datetimes).
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


Timestamp = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(format_ts, return_type=str, when_used="json"),
]


class _Model(BaseModel):
    # Consumers ignore unknown fields; records are immutable once built.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


_M = TypeVar("_M", bound=BaseModel)


def validate_produced(model: type[_M], data: bytes | str) -> _M:
    """Validate `data` (the JSON a producer sends) as a producer must: strict types, and
    an unknown field anywhere is an error.

    The models themselves stay lenient (`extra="ignore"`) because that is what consumers
    need (a newer producer must not break an older consumer, ARCHITECTURE §4); producers
    check their output through this instead. Hot-path producers that build a plain dict
    (gateway.record) are checked by tests through it, not per event.
    """
    return model.model_validate_json(data, strict=True, extra="forbid")


class Event(_Model):
    """The envelope every event carries."""

    event_type: str = "event"

    event_id: Annotated[str, ch.STRING] = Field(default_factory=new_event_id)
    schema_version: Annotated[int, ch.UINT16] = SCHEMA_VERSION
    ts: Annotated[Timestamp, ch.TS] = Field(default_factory=utc_now)
    source: Annotated[str, ch.LOW] = "meterline"

    def model_post_init(self, __context: Any) -> None:
        if self.schema_version < 1:
            raise ValueError("schema_version must be >= 1")

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


# --- gateway -----------------------------------------------------------------------------


class ToolCall(_Model):
    name: str
    arguments_hash: str


class RouteAttempt(_Model):
    """One try of a routed request: the group and deployment tried, how it ended (`status`
    0 when no HTTP answer came), how long it took, and why it failed (`error`: the
    gateway's error type, or `timeout`, `connection`, `context_window`; "" on success)."""

    group: str
    deployment: str
    provider: str
    model: str
    status: int
    latency_ms: float
    error: str = ""


class GuardrailSummary(_Model):
    guardrail: str
    stage: Literal["input", "output"]
    action: Literal["monitor", "redact", "block"]
    category: str


class RequestEvent(Event):
    event_type: Literal["request"] = "request"

    request_id: Annotated[str, ch.STRING]
    ts_start: Annotated[Timestamp, ch.TS]
    ts_end: Annotated[Timestamp, ch.TS]
    latency_ms: Annotated[float, ch.FLOAT]
    ttft_ms: Annotated[float | None, ch.NULL_FLOAT] = None
    key_id: Annotated[str | None, ch.STRING] = None
    org: Annotated[str, ch.LOW] = ""
    team: Annotated[str, ch.LOW] = ""
    project: Annotated[str, ch.LOW] = ""
    user: Annotated[str, ch.STRING] = ""
    session_id: Annotated[str | None, ch.STRING] = None
    trace_id: Annotated[str | None, ch.STRING] = None
    app: Annotated[str | None, ch.LOW] = None
    client_ip: Annotated[str | None, ch.STRING] = None
    user_agent: Annotated[str | None, ch.STRING] = None
    provider: Annotated[str | None, ch.LOW] = None
    model_requested: Annotated[str | None, ch.LOW] = None
    model_used: Annotated[str | None, ch.LOW] = None
    endpoint: Annotated[str, ch.LOW]
    # What served the request: the routing deployment, and the API spoken to it (differs
    # from the endpoint's when the gateway translated, e.g. chat -> Anthropic messages).
    deployment: Annotated[str | None, ch.LOW] = None
    upstream_api: Annotated[str | None, ch.LOW] = None
    # Every try when there was more than one (retries, fallbacks); empty when the first
    # try served or failed (then provider, deployment and status say all).
    attempts: Annotated[
        list[RouteAttempt],
        ch.STRINGS.flattening("group", "attempt_groups"),
        ch.STRINGS.flattening("deployment", "attempt_deployments"),
        ch.STRINGS.flattening("provider", "attempt_providers"),
        ch.STRINGS.flattening("model", "attempt_models"),
        ch.INT32S.flattening("status", "attempt_statuses"),
        ch.FLOATS.flattening("latency_ms", "attempt_latencies_ms"),
        ch.STRINGS.flattening("error", "attempt_errors"),
    ] = Field(default_factory=list)
    stream: Annotated[bool, ch.BOOL] = False
    status_code: Annotated[int, ch.INT32]
    error_type: Annotated[str | None, ch.LOW] = None
    input_tokens: Annotated[int, ch.INT] = 0
    output_tokens: Annotated[int, ch.INT] = 0
    cache_read_tokens: Annotated[int, ch.INT] = 0
    cache_write_tokens: Annotated[int, ch.INT] = 0
    reasoning_tokens: Annotated[int, ch.INT] = 0
    max_tokens_requested: Annotated[int | None, ch.NULL_INT] = None
    prompt_hash: Annotated[str | None, ch.STRING] = None
    prompt_chars: Annotated[int, ch.INT] = 0
    response_chars: Annotated[int, ch.INT] = 0
    # Content fingerprint for drift: 32 hex digits, one byte per bucket of 16, each the share
    # (x255) of the prompt's UTF-8 character 3-grams hashed into that bucket (reference:
    # schemas/signature.py). None when the gateway does not compute it.
    prompt_signature: str | None = None
    tool_calls: Annotated[
        list[ToolCall],
        ch.STRINGS.flattening("name", "tool_call_names"),
        ch.STRINGS.flattening("arguments_hash", "tool_call_argument_hashes"),
    ] = Field(default_factory=list)
    finish_reason: Annotated[str | None, ch.LOW] = None
    enforcement: Annotated[dict[str, str], ch.STR_MAP] = Field(default_factory=dict)
    guardrails: Annotated[
        list[GuardrailSummary],
        ch.STRINGS.flattening("guardrail", "guardrail_names"),
        ch.STRINGS.flattening("stage", "guardrail_stages"),
        ch.STRINGS.flattening("action", "guardrail_actions"),
        ch.STRINGS.flattening("category", "guardrail_categories"),
    ] = Field(default_factory=list)
    # The response cache (gateway/cache): None when it was not consulted (off, opted out,
    # not cacheable); `miss`, or a hit served from the entry the request
    # `cache_source_event_id` filled (its RequestEvent's event_id), `semantic_hit` with the
    # cosine `cache_similarity` of the prompts. A hit's provider, model and tokens are the
    # original answer's: what it would have cost (CostEvent.saved_cost), not what it did.
    cache: Annotated[CacheStatus | None, ch.LOW] = None
    cache_similarity: Annotated[float | None, ch.NULL_FLOAT] = None
    cache_source_event_id: Annotated[str | None, ch.STRING] = None


class SpanEvent(Event):
    event_type: Literal["span"] = "span"

    trace_id: Annotated[str, ch.STRING]
    span_id: Annotated[str, ch.STRING]
    parent_span_id: Annotated[str | None, ch.STRING] = None
    name: Annotated[str, ch.STRING]
    kind: Annotated[str, ch.LOW] = (
        "UNKNOWN"  # OpenInference span kind: LLM, CHAIN, TOOL, RETRIEVER, AGENT, ...
    )
    start_ts: Annotated[Timestamp, ch.TS]
    end_ts: Annotated[Timestamp, ch.TS]
    duration_ms: Annotated[float, ch.FLOAT]
    status: Annotated[Literal["unset", "ok", "error"], ch.LOW] = "unset"
    service_name: Annotated[str | None, ch.LOW] = None
    key_id: Annotated[str | None, ch.STRING] = None
    org: Annotated[str, ch.LOW] = ""
    team: Annotated[str, ch.LOW] = ""
    project: Annotated[str, ch.LOW] = ""
    user: Annotated[str | None, ch.STRING] = None
    session_id: Annotated[str | None, ch.STRING] = None
    provider: Annotated[str | None, ch.LOW] = None
    model: Annotated[str | None, ch.LOW] = None
    operation: Annotated[str | None, ch.LOW] = None
    input_tokens: Annotated[int, ch.INT] = 0
    output_tokens: Annotated[int, ch.INT] = 0
    cache_read_tokens: Annotated[int, ch.INT] = 0
    cache_write_tokens: Annotated[int, ch.INT] = 0
    tool_name: Annotated[str | None, ch.STRING] = None
    tool_arguments_hash: Annotated[str | None, ch.STRING] = None
    finish_reasons: Annotated[list[str], ch.STRINGS] = Field(default_factory=list)
    attributes: Annotated[dict[str, str], ch.STR_MAP] = Field(default_factory=dict)


class GuardrailEvent(Event):
    event_type: Literal["guardrail"] = "guardrail"

    request_id: Annotated[str, ch.STRING]
    key_id: Annotated[str | None, ch.STRING] = None
    org: Annotated[str, ch.LOW] = ""
    team: Annotated[str, ch.LOW] = ""
    project: Annotated[str, ch.LOW] = ""
    guardrail: Annotated[str, ch.LOW]
    stage: Annotated[Literal["input", "output"], ch.LOW]
    action: Annotated[Literal["monitor", "redact", "block"], ch.LOW]
    category: Annotated[str, ch.LOW]
    confidence: Annotated[float, ch.FLOAT] = 1.0
    excerpt: Annotated[str, ch.STRING] = ""  # redacted, never the raw secret


# --- processors ------------------------------------------------------------------------


class CostEvent(Event):
    event_type: Literal["cost"] = "cost"

    request_id: Annotated[str, ch.STRING]
    source_type: Annotated[Literal["request", "span"], ch.LOW] = "request"
    request_ts: Annotated[Timestamp, ch.TS]
    key_id: Annotated[str | None, ch.STRING] = None
    org: Annotated[str, ch.LOW] = ""
    team: Annotated[str, ch.LOW] = ""
    project: Annotated[str, ch.LOW] = ""
    user: Annotated[str, ch.STRING] = ""
    session_id: Annotated[str | None, ch.STRING] = None
    provider: Annotated[str | None, ch.LOW] = None
    model: Annotated[str | None, ch.LOW] = None
    input_tokens: Annotated[int, ch.INT] = 0
    output_tokens: Annotated[int, ch.INT] = 0
    cache_read_tokens: Annotated[int, ch.INT] = 0
    cache_write_tokens: Annotated[int, ch.INT] = 0
    input_cost: Annotated[Money, ch.MONEY] = Decimal(0)
    output_cost: Annotated[Money, ch.MONEY] = Decimal(0)
    cache_read_cost: Annotated[Money, ch.MONEY] = Decimal(0)
    cache_write_cost: Annotated[Money, ch.MONEY] = Decimal(0)
    total_cost: Annotated[Money, ch.MONEY] = Decimal(0)
    currency: Annotated[Literal["USD"], ch.LOW] = "USD"
    price_source: Annotated[str, ch.LOW]
    priced: Annotated[bool, ch.BOOL]
    # A response-cache hit costs nothing (every cost and token count above is 0) and
    # saves what its original answer costs: `saved_cost`, priced exactly as spend is.
    cache: Annotated[CacheStatus | None, ch.LOW] = None
    saved_cost: Annotated[Money, ch.MONEY] = Decimal(0)
    # The gateway refused the request before any provider saw it (bad key, block, limit,
    # body too large, no model): it costs exactly 0 and is counted apart from spend.
    rejected: Annotated[bool, ch.BOOL] = False


class BudgetState(Event):
    event_type: Literal["budget_state"] = "budget_state"

    budget_id: Annotated[str, ch.STRING]
    subject: Annotated[str, ch.STRING]
    period: Annotated[BudgetPeriod, ch.LOW]
    period_start: Annotated[Timestamp, ch.TS]
    period_end: Annotated[Timestamp, ch.TS]
    spent_usd: Annotated[Money, ch.MONEY]
    limit_usd: Annotated[Money, ch.MONEY]
    percent_used: Annotated[float, ch.FLOAT]
    burn_rate_usd_per_hour: Annotated[Money, ch.MONEY] = Decimal(0)
    projected_exhaustion: Annotated[Timestamp | None, ch.NULL_TS] = None
    status: Annotated[BudgetStatus, ch.LOW] = "ok"
    # The watermark (schemas.spend): request_ts and request_id of the greatest request mark
    # counted; gateways add their own spend after it. No id: all of that millisecond.
    counted_through: Timestamp | None = None
    counted_through_request_id: str | None = None


class Anomaly(Event):
    event_type: Literal["anomaly"] = "anomaly"

    anomaly_id: Annotated[str, ch.STRING] = Field(default_factory=new_event_id)
    kind: Annotated[str, ch.LOW]  # llmjacking, agent_loop, ...
    subject: Annotated[str, ch.STRING]
    score: Annotated[float, ch.FLOAT]
    severity: Annotated[Severity, ch.LOW]
    signals: Annotated[list[str], ch.STRINGS] = Field(default_factory=list)
    evidence: Annotated[dict[str, Any], ch.Column("String", json=True)] = Field(
        default_factory=dict
    )
    recommended_action: Annotated[Literal["none", "alert", "throttle", "block"], ch.LOW] = "alert"


class DriftReport(Event):
    event_type: Literal["drift"] = "drift"

    scope: Annotated[str, ch.STRING]  # e.g. app:<app>/model:<model>
    metric: Annotated[str, ch.LOW]
    statistic: Annotated[Literal["psi", "ks"], ch.LOW]
    value: Annotated[float, ch.FLOAT]
    threshold: Annotated[float, ch.FLOAT]
    drifted: Annotated[bool, ch.BOOL]
    window_start: Annotated[Timestamp, ch.TS]
    window_end: Annotated[Timestamp, ch.TS]
    reference_start: Annotated[Timestamp | None, ch.NULL_TS] = None
    reference_end: Annotated[Timestamp | None, ch.NULL_TS] = None


class EnforcementDecision(Event):
    event_type: Literal["enforcement"] = "enforcement"

    subject: Annotated[str, ch.STRING]
    action: Annotated[EnforcementAction, ch.LOW]
    reason: Annotated[str, ch.STRING]
    source: Annotated[DecisionSource, ch.LOW]
    rpm: Annotated[int | None, ch.NULL_INT] = None
    expires_at: Annotated[Timestamp | None, ch.NULL_TS] = None
    decided_at: Annotated[Timestamp, ch.TS] = Field(default_factory=utc_now)
    anomaly_id: Annotated[str | None, ch.STRING] = None
    decided_by: Annotated[str | None, ch.STRING] = (
        None  # who: the detector's stage, or the admin API's actor
    )


# --- control plane (compacted `meterline.control`) -------------------------------------


class KeyRecord(Event):
    event_type: Literal["key"] = "key"

    key_id: str
    key_hash: str  # sha256 hex of the secret; the secret itself is never stored
    org: str
    team: str = ""
    project: str = ""
    user: str = ""
    models: list[str] | None = None  # allow-list; None means every model
    rpm: int | None = None
    tpm: int | None = None
    budget_ids: list[str] = Field(default_factory=list)
    store_prompts: bool = False
    revoked: bool = False
    created_at: Timestamp = Field(default_factory=utc_now)
    created_by: str = "admin"


class IngestTokenRecord(Event):
    """A credential for OTLP ingest only (never the LLM proxy): spans sent with it are
    attributed to its org/team/project. Control key `ingest_token:<token_id>`."""

    event_type: Literal["ingest_token"] = "ingest_token"

    token_id: str
    token_hash: str  # sha256 hex of the secret; the secret itself is never stored
    org: str
    team: str = ""
    project: str = ""
    name: str = ""
    revoked: bool = False
    created_at: Timestamp = Field(default_factory=utc_now)
    created_by: str = "admin"


class BudgetRecord(Event):
    event_type: Literal["budget"] = "budget"

    budget_id: str
    subject: str
    period: BudgetPeriod
    limit_usd: Money
    soft_pct: float = 80.0
    action_on_hard: HardLimitAction = "block"
    throttle_rpm: int | None = None
    timezone: str = "UTC"
    deleted: bool = False
    created_by: str = "admin"


class _PolicyRecord(Event):
    """The fields every policy shares; each kind narrows `kind` and `mode` (schemas.policies)."""

    event_type: Literal["policy"] = "policy"

    policy_id: str
    subject: str  # usually org:<org>
    kind: str
    mode: str
    params: dict[str, Any] = Field(default_factory=dict)
    deleted: bool = False
    created_by: str = "admin"


class GuardrailPolicyRecord(_PolicyRecord):
    kind: GuardrailKind
    mode: GuardrailMode


class LlmjackingPolicyRecord(_PolicyRecord):
    kind: Literal["llmjacking"]
    mode: LlmjackingMode


class AgentLoopPolicyRecord(_PolicyRecord):
    kind: Literal["agent_loop"]
    mode: AgentLoopMode


class CachePolicyRecord(_PolicyRecord):
    kind: Literal["cache"]
    mode: CacheMode


# A policy record: one model per kind, chosen by `kind` (ARCHITECTURE §9). The wire format is
# the same flat JSON object as before; a mode outside its kind's list does not validate.
PolicyRecord = Annotated[
    GuardrailPolicyRecord | LlmjackingPolicyRecord | AgentLoopPolicyRecord | CachePolicyRecord,
    Field(discriminator="kind"),
]
POLICY_RECORD_MODELS: tuple[type[_PolicyRecord], ...] = (
    GuardrailPolicyRecord,
    LlmjackingPolicyRecord,
    AgentLoopPolicyRecord,
    CachePolicyRecord,
)
_POLICY_RECORD: TypeAdapter[PolicyRecord] = TypeAdapter(PolicyRecord)


def policy_record(data: Any) -> PolicyRecord:
    """A PolicyRecord of the right kind from a dict or keywords' mapping; ValidationError if
    the kind is unknown or the mode is not one of its modes."""
    return _POLICY_RECORD.validate_python(data)


def policy_record_json(data: bytes | str) -> PolicyRecord:
    """policy_record() from JSON bytes."""
    return _POLICY_RECORD.validate_json(data)


class DeadLetter(Event):
    event_type: Literal["dead_letter"] = "dead_letter"

    original_topic: Annotated[str, ch.LOW]
    original_partition: Annotated[int | None, ch.NULL_INT32] = None
    original_offset: Annotated[int | None, ch.NULL_INT] = None
    original_key: Annotated[str | None, ch.STRING] = None
    error: Annotated[str, ch.STRING]
    stage: Annotated[str, ch.LOW]  # which component rejected it
    payload: Annotated[str, ch.STRING]  # original bytes, decoded with errors="replace"


# event_type -> its model: a class, or (policy) the union of one class per kind.
EVENT_MODELS: dict[str, Any] = {
    model.model_fields["event_type"].default: model
    for model in (
        RequestEvent,
        SpanEvent,
        GuardrailEvent,
        CostEvent,
        BudgetState,
        Anomaly,
        DriftReport,
        EnforcementDecision,
        KeyRecord,
        IngestTokenRecord,
        BudgetRecord,
        DeadLetter,
    )
}
EVENT_MODELS["policy"] = PolicyRecord
# event_type -> a validator (and JSON Schema) for it, whichever shape its model has.
EVENT_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    event_type: TypeAdapter(model) for event_type, model in EVENT_MODELS.items()
}
