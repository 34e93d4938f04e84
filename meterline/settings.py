"""One settings model for every Meterline process.

Values come from, in order of precedence: constructor arguments, `METERLINE_*`
environment variables, the YAML file named by `METERLINE_CONFIG` (default
`./meterline.yaml` when it exists), then the defaults below. Values shared by several
services sit at the top; each service's own are grouped in nested sections (`gateway`,
`processors.llmjacking`, `ingest.sink`, ...), each field with its one default. Components
receive their section (and the shared values they need) and never read the environment.

Mistakes are one line, not a traceback: `load_settings()` raises `ConfigError` naming the
variable or the file and key (meterline/config_sources.py), and every CLI verb prints it.
"""

from __future__ import annotations

import ipaddress
import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from meterline.config_sources import (
    ConfigError,
    EnvSource,
    Section,
    YamlFileSource,
    describe_settings_error,
    settings_env,
    warn_unknown_env,
)
from meterline.routing_config import ProviderConfig, RoutingConfig
from schemas.policies import AgentLoopMode, CacheMode, GuardrailMode, LlmjackingMode
from schemas.subjects import SubjectError, validate_subject

__all__ = [
    "CONFIG_FILE_ENV",
    "FORMER_NAMES",
    "MAX_WORKERS",
    "READ_TOKEN_FIELDS",
    "AgentLoopSettings",
    "AlertSettings",
    "BudgetSettings",
    "CachePolicySettings",
    "CacheSettings",
    "ConfigError",
    "DashboardSettings",
    "DriftSettings",
    "EmitterSettings",
    "EnforcementSettings",
    "GatewaySettings",
    "GuardrailSettings",
    "IngestSettings",
    "LlmjackingSettings",
    "OtlpSettings",
    "PriceOverride",
    "ProcessorsSettings",
    "ProviderConfig",
    "RecostSettings",
    "Settings",
    "SinkSettings",
    "config_file",
    "get_settings",
    "load_settings",
    "merged",
]

# A TCP port to listen on or connect to.
Port = Annotated[int, Field(ge=1, le=65535)]
# Processes (or sink threads) per service (issue 13): `meterline up --processors N ...`.
MAX_WORKERS = 64
Workers = Annotated[int, Field(ge=1, le=MAX_WORKERS)]


class PriceOverride(BaseModel):
    """Per-model prices in USD per million tokens (self-hosted or negotiated)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a default

    name: str = "custom"
    input_mtok: Decimal = Decimal(0)
    output_mtok: Decimal = Decimal(0)
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None


READ_TOKEN_FIELDS = ("read_token_finance", "read_token_security", "read_token_admin")

# The one variable read outside the model: it says where the YAML file is.
CONFIG_FILE_ENV = "METERLINE_CONFIG"


def config_file() -> Path | None:
    """The YAML file to read: `METERLINE_CONFIG` (which must exist), else `./meterline.yaml`
    when there is one."""
    named = os.environ.get(CONFIG_FILE_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_FILE_ENV}={named}: no such configuration file")
        return path
    default = Path("meterline.yaml")
    return default if default.is_file() else None


class EmitterSettings(Section):
    """The gateway's Kafka producer of events (gateway/emit)."""

    delivery_timeout_ms: int = 5000
    # Events the broker acknowledged in the last window are kept (at most max_events) and
    # sent again if it restarts without its data (the embedded broker's memory storage).
    redelivery_window_s: float = Field(default=30.0, ge=0)
    redelivery_max_events: int = Field(default=50_000, ge=0)


class EnforcementSettings(Section):
    """Enforcement view staleness: older than `stale_after_s` (reader lagging, broker
    unreachable) the gateway serves anyway ("open") or answers 503 ("closed")."""

    stale_after_s: float = 30.0
    fail_mode: Literal["open", "closed"] = "open"


class GuardrailSettings(Section):
    """Guardrails (gateway/guardrails): each guardrail's default mode, `off`, `monitor` (event
    only), `redact` (mask, then forward or return) or `block` (400); a guardrail left out
    is off. PolicyRecords (POST /admin/policies) override them per key, user, team,
    project or org. Streams hold back `stream_hold_chars` of text (at least 48, the longest
    finding with spaces) so nothing is released before it is judged; a text longer than
    `max_scan_chars` is scanned up to there (and counted)."""

    modes: dict[str, GuardrailMode] = Field(
        default_factory=lambda: {
            "pii": "monitor",
            "secrets": "redact",
            "prompt_injection": "monitor",
        }
    )
    stream_hold_chars: int = 48
    max_scan_chars: int = 256 * 1024


class CachePolicySettings(BaseModel):
    """One org's (or key's, team's, ...) cache policy in YAML; unset params: the defaults."""

    model_config = ConfigDict(extra="forbid")

    mode: CacheMode
    ttl_s: float | None = Field(default=None, gt=0)
    similarity: float | None = Field(default=None, gt=0, le=1)
    scope: Literal["org", "key"] | None = None


class CacheSettings(Section):
    """The response cache (gateway/cache, docs/cache.md). `mode` is the default for every
    org (`off`, `exact`, `semantic`); `cache` PolicyRecords (POST /admin/policies) set it
    per key, user, team, project or org, with their own `ttl_s`, `similarity` and `scope`.
    Entries are partitioned by org (or by key: `scope: key`) so no answer crosses orgs.
    `ignore_params` are body fields that do not change the answer (left out of the key).
    Memory is bounded by `max_entries` and `max_bytes` (least recently used evicted first).
    Semantic lookups embed the prompt with `embedding_model` through the gateway's own
    routing (exact cosine search in numpy). `policies` sets modes per subject in YAML
    (`org:acme: {mode: semantic, ttl_s: 600}`), as PolicyRecords do. `redis_url` shares
    entries across gateway replicas (off when unset)."""

    mode: CacheMode = "off"
    ttl_s: float = Field(default=3600.0, gt=0)
    similarity: float = Field(default=0.95, gt=0, le=1)
    scope: Literal["org", "key"] = "org"
    ignore_params: list[str] = Field(default_factory=lambda: ["user", "metadata", "store"])
    max_entries: int = Field(default=10_000, ge=1)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    embedding_model: str = "text-embedding-3-small"
    semantic_tools: bool = False  # semantic hits for requests with tool results or images
    policies: dict[str, CachePolicySettings] = Field(default_factory=dict)
    redis_url: str | None = None

    @field_validator("policies")
    @classmethod
    def _subjects(cls, value: dict[str, CachePolicySettings]) -> dict[str, CachePolicySettings]:
        for subject in value:
            try:
                validate_subject(subject)
            except SubjectError as exc:
                raise ValueError(str(exc)) from None
        return value


class GatewaySettings(Section):
    """The gateway (gateway/): request limits, upstream timeouts, spool, proxies, tracing.

    `workers` gateway processes share `gateway_port` (SO_REUSEPORT); worker i also answers
    on its own port `gateway_port + 1 + i` (health, per-process checks), see
    meterline/workers.py."""

    workers: Workers = 1
    max_body_bytes: int = 4 * 1024 * 1024
    upstream_timeout_s: float = 60.0
    upstream_connect_timeout_s: float = 5.0
    spool_dir: Path | None = None  # None: <data_dir>/spool
    # CIDRs of proxies whose X-Forwarded-For names the client (gateway/client_address.py).
    # Empty trusts nobody: the recorded client is the socket peer.
    trusted_proxies: list[str] = Field(default_factory=list)
    # The gateway's own span per request on the spans topic (gateway/tracing), and the
    # prompt content signature drift reads (gateway/signature.py, ~11-20 us per request).
    spans: bool = True
    prompt_signature: bool = True
    # Prometheus series per virtual key (requests, cost estimate) besides per model and
    # provider: one series per key, so off by default (bounded label cardinality).
    metrics_per_key: bool = False
    emitter: EmitterSettings = Field(default_factory=EmitterSettings)
    enforcement: EnforcementSettings = Field(default_factory=EnforcementSettings)
    guardrail: GuardrailSettings = Field(default_factory=GuardrailSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_network(cidr.strip(), strict=False)) for cidr in value]
        except ValueError as exc:
            raise ValueError(f"expected networks such as 10.0.0.0/8 ({exc})") from None


class BudgetSettings(Section):
    """The budgets agent (processors/budgets)."""

    tick_interval_s: float = 5.0  # how often budgets check for period rollover
    reconcile_timeout_s: float = 15.0  # how long to wait for the read API at start
    # A worker that gains budget subjects waits this long for the sink to store every
    # fanned-out cost (then restores anyway and reconciles again until it has)...
    sink_wait_s: float = Field(default=15.0, ge=0)
    # ...and takes the warehouse's sum of the costs older than this, the newer ones cost
    # by cost: costs must reach the warehouse within it (recost's grace_s included).
    reconcile_horizon_s: float = Field(default=600.0, gt=0)
    control_ready_timeout_s: float = 10.0  # longest wait for all BudgetRecords at start


class RecostSettings(Section):
    """Requests stored without a cost for `grace_s` (a cost lost in a broker restart) are
    priced again, every `interval_s`, looking back `lookback_s` (processors/cost/recost.py)."""

    interval_s: float = Field(default=30.0, gt=0)
    grace_s: float = Field(default=120.0, ge=0)
    lookback_s: float = Field(default=86_400.0, gt=0)


class AlertSettings(Section):
    """Alerts (Slack-compatible webhooks, processors/alerts). `webhooks` get every alert;
    `security_webhooks` get anomalies and llmjacking/agent_loop enforcement. No webhook:
    alerts are off."""

    webhooks: list[str] = Field(default_factory=list)
    security_webhooks: list[str] = Field(default_factory=list)
    dedup_window_s: float = 600.0  # one alert per subject and kind per window
    max_retries: int = 4  # per webhook and alert, on 5xx, 429, timeouts, network errors
    timeout_s: float = 5.0  # per webhook request
    queue_size: int = 1000  # per webhook; when full the oldest alert is dropped
    max_age_s: float = 3600.0  # older events only update state: a replay must not page
    on_lift: bool = True  # also notify when a block or throttle is lifted


class DriftSettings(Section):
    """Drift (processors/drift): a window per scope closes after `window_events` events, or
    once `window_s` has passed (0: no time limit; checked on every event and every few
    seconds for idle scopes) with at least `min_events`; while open it is judged every
    quarter window. It is compared with the first window ("fixed") or the newest stable
    windows pooled ("trailing"). A metric drifts when the shift is significant (KS or
    Mann-Whitney, Fisher; p < `pvalue`) AND large in the metric's own units: its median or
    p90 moved by at least `min_relative_shift` of the reference's and by `min_shift`
    (chars, tokens, ms), a rate by `min_rate_shift` (absolute), the share of prompts unlike
    the reference's by `min_content_shift`. PSI is reported, not judged by."""

    window_events: int = 500
    window_s: float = 60.0
    min_events: int = 20
    reference: Literal["fixed", "trailing"] = "trailing"
    reference_windows: int = 5  # trailing: the newest stable windows pooled...
    reference_events: int = 1000  # ...no more of them than hold this many requests
    psi_threshold: float = 0.25  # reported beside PSI (a rule of thumb), not judged by
    psi_bins: int = 10
    pvalue: float = 2e-6
    hold_pvalue: float = 0.01  # a window moved by its floor at this p: held out of the reference
    min_relative_shift: float = 0.25
    min_shift: dict[str, float] = Field(
        default_factory=lambda: {
            "prompt_chars": 100.0,
            "response_chars": 100.0,
            "input_tokens": 25.0,
            "output_tokens": 25.0,
            "latency_ms": 50.0,
        }
    )
    min_rate_shift: float = 0.02
    # Content: the share of prompts unlike the reference's (see drift/logic.py).
    min_content_shift: float = 0.2
    max_scopes: int = 1000  # scopes come from client traffic: bound the memory

    @model_validator(mode="after")
    def _window_holds_min_events(self) -> DriftSettings:
        if not 2 <= self.min_events <= self.window_events:
            raise ValueError("need 2 <= min_events <= window_events")
        if self.reference_windows < 1:
            raise ValueError("need reference_windows >= 1")
        return self


class LlmjackingSettings(Section):
    """LLMjacking (processors/llmjacking): every request judged at once against the key's
    learned normal, or its peers' (team, app, org, population) while it is young; a key
    is mature after `learning_requests` over `learning_s` of normal traffic, learned
    continuously `probation_s` after it is judged normal. Windows of `window_s` collect
    what is new. Mode per org from PolicyRecord(kind="llmjacking"), else `default_mode`;
    `enforce` blocks the key for `block_s` on a high-severity detection."""

    default_mode: LlmjackingMode = "monitor"
    window_s: float = 300.0
    learning_requests: int = 30
    learning_s: float = 600.0
    probation_s: float = 60.0  # normal traffic is learned this long after, if still normal
    block_s: float = 86400.0
    persist_interval_s: float = 60.0  # key states + peer baselines to <data_dir>/llmjacking
    # Keys that learned something go to the llmjacking-keys topic this often, for the
    # worker that takes their partition over (processors/llmjacking/handoff.py); that
    # worker reads them for at most `handoff_read_timeout_s` before it goes on without.
    handoff_interval_s: float = Field(default=5.0, gt=0)
    handoff_read_timeout_s: float = Field(default=15.0, gt=0)
    max_keys: int = 100_000  # key ids come from traffic: bound the memory


class AgentLoopSettings(Section):
    """Agent loops (processors/agentloop), per session (x-session-id, span session.id, else
    trace id). Mode per org from PolicyRecord(kind="agent_loop"), else `default_mode`."""

    default_mode: AgentLoopMode = "monitor"
    repeat_threshold: int = 5  # identical steps (or cycle length) that make a loop
    history: int = 30  # recent steps a session's repeats are counted over
    prompt_similarity: float = 0.97  # signature similarity of near-duplicates
    # Limits, reported (never enforced) past them; off by default: a long session is no
    # runaway one, and how long an honest agent runs is the operator's to say.
    max_steps: int | None = None  # billable calls per session
    max_session_usd: Decimal | None = None
    max_session_tokens: int | None = None
    throttle_rpm: int = 6
    block_s: float = 3600.0  # expiry of a session throttle or block
    session_ttl_s: float = 3600.0  # idle sessions are forgotten (event time)
    max_sessions: int = 50_000


class ProcessorsSettings(Section):
    """The stream processors (processors/): the Faust app and each agent's section.

    `workers` Faust workers of the one app id (consumer group); worker i serves its web
    port at `processors_port + i` and keeps its state under its own data dir."""

    app_id: str = "meterline-processors"
    workers: Workers = 1
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    recost: RecostSettings = Field(default_factory=RecostSettings)
    alert: AlertSettings = Field(default_factory=AlertSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    llmjacking: LlmjackingSettings = Field(default_factory=LlmjackingSettings)
    agent_loop: AgentLoopSettings = Field(default_factory=AgentLoopSettings)


class OtlpSettings(Section):
    """OTLP/HTTP receiver (ingest/otlp, POST /v1/traces)."""

    max_body_bytes: int = 8 * 1024 * 1024  # also enforced after gzip (zip bombs)
    publish_timeout_s: float = 10.0  # longest wait for Kafka to acknowledge spans
    # "required": every export needs `Authorization: Bearer <virtual key | ingest token>`
    # and spans are attributed from it. "off": a sender on the loopback address may also
    # export without one, its claimed `meterline.*` attribution kept (embedded demos only;
    # ingest logs a warning at start). Any credential sent is always checked.
    auth: Literal["required", "off"] = "required"
    # A span claiming more tokens than this (any one count) is rejected, with the reason.
    max_span_tokens: int = Field(default=10_000_000, ge=1)


class SinkSettings(Section):
    """The ingest sink (ingest/sink): Kafka topics into ClickHouse, in batches.

    `workers` SinkConsumer threads of group `group_id` in the ingest process, sharing its
    one ClickHouse client (embedded chDB allows one engine per process)."""

    group_id: str = "meterline-ingest"
    workers: Workers = 1
    batch_rows: int = 20_000
    flush_interval_s: float = 0.5
    retry_max_backoff_s: float = 10.0


class IngestSettings(Section):
    """Ingest (ingest/): the OTLP receiver and the ClickHouse sink."""

    otlp: OtlpSettings = Field(default_factory=OtlpSettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)


class DashboardSettings(Section):
    """The dashboards (dashboards/)."""

    # Seconds between automatic refreshes of each page's figures (0: never).
    refresh_s: float = Field(default=30.0, ge=0)


# Flat names whose variable or key changed beyond "<section>_<field>" when settings were
# grouped (issue 11): config errors and the unknown-variable warning name the new place.
FORMER_NAMES = {
    "max_body_bytes": "gateway.max_body_bytes",
    "upstream_timeout_s": "gateway.upstream_timeout_s",
    "upstream_connect_timeout_s": "gateway.upstream_connect_timeout_s",
    "spool_dir": "gateway.spool_dir",
    "trusted_proxies": "gateway.trusted_proxies",
    "security_webhooks": "processors.alert.security_webhooks",
}


class Settings(BaseSettings):
    """Every Meterline setting: shared values at the top, each service's in its section.

    A leaf is set by `METERLINE_<SECTION>_<FIELD>`, SECTION its innermost section
    (`METERLINE_LLMJACKING_WINDOW_S`), or in YAML by its path
    (`processors: {llmjacking: {window_s: 300}}`); top-level fields by `METERLINE_<FIELD>`.
    """

    model_config = SettingsConfigDict(extra="forbid")

    # Where embedded state lives (ClickHouse engine files, gateway spool).
    data_dir: Path = Path(".meterline")

    # Kafka. `None` means "start the embedded broker" (meterline up).
    kafka_bootstrap: str | None = None
    topic_prefix: str = "meterline."
    topic_partitions: int = Field(default=3, ge=1)
    kafka_session_timeout_ms: int = 6000

    # ClickHouse. `None` means the embedded engine at `<data_dir>/clickhouse`.
    clickhouse_url: str | None = None
    clickhouse_database: str = "meterline"

    # Listening addresses (ARCHITECTURE §5).
    host: str = "127.0.0.1"
    gateway_port: Port = 8080
    ingest_port: Port = 4318
    processors_port: Port = 6066
    dashboard_port: Port = 8501
    broker_port: Port = 9092
    mock_provider_port: Port = 9100

    # How processes reach each other, and the admin API's token.
    admin_token: SecretStr | None = None
    gateway_url: str | None = None  # how other processes reach the gateway
    read_api_url: str | None = None  # how dashboards reach ingest's read API
    dashboard_url: str | None = None  # how alert readers reach the dashboards
    providers: list[ProviderConfig] = Field(default_factory=list)
    # Model groups, balancing, retries, fallbacks, breakers (meterline/routing_config.py).
    routing: RoutingConfig = RoutingConfig()
    price_overrides: dict[str, PriceOverride] = Field(default_factory=dict)

    # Read API role tokens (ingest /api/*, `Authorization: Bearer <token>`): finance sees spend
    # and budgets, security anomalies, enforcement and request metadata, admin everything.
    # None configured: the read API is open (meant for the loopback default of the embedded
    # stack; ingest warns when it listens elsewhere without tokens).
    read_token_finance: SecretStr | None = None
    read_token_security: SecretStr | None = None
    read_token_admin: SecretStr | None = None

    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    processors: ProcessorsSettings = Field(default_factory=ProcessorsSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_ends_with_dot(cls, value: str) -> str:
        return value if not value or value.endswith(".") else value + "."

    @model_validator(mode="after")
    def _deployments_name_providers(self) -> Settings:
        known = {p.name for p in self.providers}
        for group in self.routing.groups:
            for deployment in group.deployments:
                if deployment.provider not in known:
                    raise ValueError(
                        f"routing group '{group.name}': no provider named "
                        f"'{deployment.provider}' (providers: {', '.join(sorted(known)) or 'none'})"
                    )
        return self

    @model_validator(mode="after")
    def _warn_unknown_variables(self) -> Settings:
        ignored = {CONFIG_FILE_ENV, *(p.api_key_env for p in self.providers if p.api_key_env)}
        warn_unknown_env(type(self), os.environ, ignored, FORMER_NAMES)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Our env source also takes comma-separated lists; the YAML source refuses unknown keys.
        sources: list[PydanticBaseSettingsSource] = [init_settings, EnvSource(settings_cls)]
        path = config_file()
        if path is not None:
            sources.append(YamlFileSource(settings_cls, path, FORMER_NAMES))
        return tuple(sources)

    # Derived values, computed so nobody re-derives them differently.
    def topic(self, name: str) -> str:
        """Full topic name for a base name such as `requests` (ARCHITECTURE §3)."""
        return f"{self.topic_prefix}{name}"

    @property
    def resolved_clickhouse_url(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def resolved_spool_dir(self) -> Path:
        return self.gateway.spool_dir or self.data_dir / "spool"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def resolved_gateway_url(self) -> str:
        return self.gateway_url or f"http://{self.host}:{self.gateway_port}"

    @property
    def admin_token_file(self) -> Path:
        """Where `meterline up` keeps the admin token it generated."""
        return self.data_dir / "admin_token"

    @property
    def resolved_admin_token(self) -> SecretStr | None:
        """The configured admin token, else the one `meterline up` generated (if any)."""
        if self.admin_token is not None:
            return self.admin_token
        try:
            return SecretStr(self.admin_token_file.read_text().strip())
        except OSError:
            return None

    @property
    def resolved_read_api_url(self) -> str:
        return self.read_api_url or f"http://{self.host}:{self.ingest_port}"

    @property
    def resolved_dashboard_url(self) -> str:
        return self.dashboard_url or f"http://{self.host}:{self.dashboard_port}"

    def provider_for(self, model: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.serves(model)), None)

    @property
    def max_consumers(self) -> int:
        """The largest consumer count of one group: topics need at least this many
        partitions, or the extra consumers sit idle."""
        return max(self.processors.workers, self.ingest.sink.workers)

    @property
    def effective_topic_partitions(self) -> int:
        """`topic_partitions`, raised to `max_consumers` (meterline/kafka.py logs it)."""
        return max(self.topic_partitions, self.max_consumers)

    def child_env(self) -> dict[str, str]:
        """Environment that reproduces these settings in a child process (secrets unmasked)."""
        return settings_env(self)


def load_settings(**overrides: Any) -> Settings:
    """`Settings(**overrides)`, raising ConfigError (one line for the user) on a mistake."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        try:
            path = config_file()
        except ConfigError:
            path = None
        raise ConfigError(describe_settings_error(exc, Settings, path)) from None


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` updated by `overrides`, nested dicts merged key by key (section overrides:
    `merged(defaults, {"processors": {"drift": {"window_s": 0}}})`)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@lru_cache
def get_settings() -> Settings:
    return load_settings()
