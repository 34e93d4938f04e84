"""How models reach providers: model groups of deployments, retries, fallbacks, breakers.

Configured in `meterline.yaml` (README "Routing"); the gateway reads it at start and
keeps every decision in memory (gateway/routing). A model group is a public model name
(plus aliases) served by one or more deployments; a deployment is one provider serving
one upstream model. A request for a name no group claims falls back to the providers'
`models` patterns: one deployment, the provider named by the first matching pattern.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BreakerConfig",
    "DeploymentConfig",
    "ModelGroupConfig",
    "ProviderConfig",
    "ProviderKind",
    "RetryConfig",
    "RoutingConfig",
    "TimeoutsConfig",
]

# Statuses a retry or fallback may follow, plus the failures that have no status.
Trigger = int | Literal["timeout", "connection", "context_window"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # a misspelt key is an error


# What an upstream speaks: `openai` (OpenAI and every compatible server: vLLM, Ollama,
# LiteLLM, ...: chat completions, completions, embeddings, Responses), `azure` (Azure
# OpenAI: deployment paths, `api-version`, `api-key` header), `anthropic` (Messages).
ProviderKind = Literal["openai", "azure", "anthropic"]


class ProviderConfig(_Strict):
    """One upstream. `base_url` ends in `/v1` (OpenAI-compatible, Anthropic) or is the Azure
    resource's endpoint; `api_key_env` names the environment variable holding its key, so
    the key never sits in a config file. `models`: exact names or `prefix*` patterns this
    provider serves when no routing group claims the model."""

    name: str
    base_url: str
    kind: ProviderKind = "openai"
    api_key_env: str | None = None
    models: list[str] = Field(default_factory=lambda: ["*"])
    # Provider id for pricing (genai-prices); defaults to `name`.
    price_provider: str | None = None
    api_version: str | None = None  # azure: required (`?api-version=`)
    anthropic_version: str = "2023-06-01"  # anthropic: the `anthropic-version` header

    @model_validator(mode="after")
    def _azure_needs_a_version(self) -> ProviderConfig:
        if self.kind == "azure" and not self.api_version:
            raise ValueError(f"provider '{self.name}': kind azure needs api_version")
        return self

    def serves(self, model: str) -> bool:
        for pattern in self.models:
            if pattern == "*" or pattern == model:
                return True
            if pattern.endswith("*") and model.startswith(pattern[:-1]):
                return True
        return False


class TimeoutsConfig(_Strict):
    """Seconds; `None` keeps the gateway-wide default (`upstream_*` settings)."""

    connect_s: float | None = Field(default=None, gt=0)
    # Until the upstream's response headers (non-streaming) or first event (streams).
    first_byte_s: float | None = Field(default=None, gt=0)
    total_s: float | None = Field(default=None, gt=0)


class DeploymentConfig(_Strict):
    """One provider serving one upstream model within a group."""

    provider: str  # a `providers[].name`
    model: str | None = None  # the upstream's model (Azure: deployment) name; default: group
    name: str | None = None  # shown in events and metrics; default `<provider>/<model>`
    weight: float = Field(default=1.0, gt=0)
    rpm: int | None = Field(default=None, ge=1)  # this gateway's share of the upstream limit
    tpm: int | None = Field(default=None, ge=1)
    timeouts: TimeoutsConfig = TimeoutsConfig()


class ModelGroupConfig(_Strict):
    name: str  # the public model name clients send
    aliases: list[str] = Field(default_factory=list)
    deployments: list[DeploymentConfig] = Field(min_length=1)
    # Groups tried in order when this one fails on a `fallback_on` trigger.
    fallbacks: list[str] = Field(default_factory=list)


class RetryConfig(_Strict):
    """Retries within a group (another deployment when there is one, else the same after
    a backoff); bounded in attempts and in total time, never on a client error."""

    attempts: int = Field(default=3, ge=1, le=10)  # tries per group, the first included
    backoff_s: float = Field(default=0.25, ge=0)  # doubled per retry, full jitter
    max_backoff_s: float = Field(default=4.0, ge=0)
    # A Retry-After longer than this is not waited for: the next deployment or group is
    # tried, else the client gets the 429 with the upstream's Retry-After at once.
    max_retry_after_s: float = Field(default=2.0, ge=0)
    total_s: float = Field(default=60.0, gt=0)  # the whole request, fallbacks included


class BreakerConfig(_Strict):
    """Per deployment: `failures` consecutive failures open it; after `cooldown_s` one
    probe request is let through (half-open); its success closes it."""

    failures: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=30.0, gt=0)


class RoutingConfig(_Strict):
    strategy: Literal["weighted", "least_busy", "latency"] = "weighted"
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    # (Not `retry.on`: YAML 1.1 reads a bare `on` key as the boolean true.)
    # 529: Anthropic's overloaded_error, a 5xx like the others.
    retry_on: list[Trigger] = Field(
        default_factory=lambda: [
            408,
            409,
            429,
            500,
            502,
            503,
            504,
            529,
            "timeout",
            "connection",
        ]
    )
    fallback_on: list[Trigger] = Field(
        default_factory=lambda: [
            429,
            500,
            502,
            503,
            504,
            529,
            "timeout",
            "connection",
            "context_window",
        ]
    )
    groups: list[ModelGroupConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_resolve(self) -> RoutingConfig:
        names: set[str] = set()
        for group in self.groups:
            for name in (group.name, *group.aliases):
                if name in names:
                    raise ValueError(f"model name '{name}' is claimed by two groups")
                names.add(name)
        for group in self.groups:
            for target in group.fallbacks:
                if target not in names:
                    raise ValueError(
                        f"group '{group.name}' falls back to '{target}', which no group serves"
                    )
        return self
