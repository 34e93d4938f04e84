"""Policy kinds and modes (ARCHITECTURE §9): what a PolicyRecord on `meterline.control` may say.

| kind              | modes                          | acted on by                 |
|-------------------|--------------------------------|-----------------------------|
| `guardrail:<name>`| off, monitor, redact, block    | gateway (guardrails)        |
| `llmjacking`      | off, monitor, enforce          | processors/llmjacking       |
| `agent_loop`      | off, monitor, throttle, block  | processors/agentloop        |
| `cache`           | off, exact, semantic           | gateway (gateway/cache)     |

The record models themselves (`schemas.events.PolicyRecord`, a union discriminated on
`kind`) are typed with these Literals; the admin API, the detectors, the guardrail view
and the settings defaults check modes against this one table instead of their own lists.
Plain values and functions: the gateway resolves guardrail kinds while reading the
control topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, get_args

__all__ = [
    "AGENT_LOOP",
    "AGENT_LOOP_MODES",
    "CACHE",
    "CACHE_HITS",
    "CACHE_MODES",
    "DETECTOR_KINDS",
    "GUARDRAILS",
    "GUARDRAIL_KIND_PREFIX",
    "GUARDRAIL_MODES",
    "LLMJACKING",
    "LLMJACKING_MODES",
    "POLICY_MODES",
    "AgentLoopMode",
    "CacheMode",
    "CacheStatus",
    "GuardrailKind",
    "GuardrailMode",
    "GuardrailName",
    "LlmjackingMode",
    "guardrail_kind",
    "guardrail_of",
]

GuardrailName = Literal["pii", "secrets", "prompt_injection"]
GUARDRAILS: Final[tuple[GuardrailName, ...]] = get_args(GuardrailName)
GUARDRAIL_KIND_PREFIX: Final = "guardrail:"
GuardrailKind = Literal["guardrail:pii", "guardrail:secrets", "guardrail:prompt_injection"]

GuardrailMode = Literal["off", "monitor", "redact", "block"]
LlmjackingMode = Literal["off", "monitor", "enforce"]
AgentLoopMode = Literal["off", "monitor", "throttle", "block"]
CacheMode = Literal["off", "exact", "semantic"]
# What the response cache did for one request (RequestEvent.cache, CostEvent.cache).
CacheStatus = Literal["miss", "hit", "semantic_hit"]
CACHE_HITS: Final[tuple[CacheStatus, ...]] = ("hit", "semantic_hit")

GUARDRAIL_MODES: Final[tuple[GuardrailMode, ...]] = get_args(GuardrailMode)
LLMJACKING_MODES: Final[tuple[LlmjackingMode, ...]] = get_args(LlmjackingMode)
AGENT_LOOP_MODES: Final[tuple[AgentLoopMode, ...]] = get_args(AgentLoopMode)
CACHE_MODES: Final[tuple[CacheMode, ...]] = get_args(CacheMode)

LLMJACKING: Final = "llmjacking"
AGENT_LOOP: Final = "agent_loop"
CACHE: Final = "cache"


def guardrail_kind(name: GuardrailName) -> str:
    """`pii` -> `guardrail:pii`."""
    return f"{GUARDRAIL_KIND_PREFIX}{name}"


def guardrail_of(kind: str) -> GuardrailName | None:
    """The guardrail a policy kind names (`guardrail:pii` -> `pii`), or None."""
    if kind.startswith(GUARDRAIL_KIND_PREFIX):
        name = kind[len(GUARDRAIL_KIND_PREFIX) :]
        if name in GUARDRAILS:
            return name  # type: ignore[return-value]
    return None


# Policies the stream processors act on (the gateway only publishes them): kind -> modes.
DETECTOR_KINDS: Final[Mapping[str, tuple[str, ...]]] = {
    LLMJACKING: LLMJACKING_MODES,
    AGENT_LOOP: AGENT_LOOP_MODES,
}

# Every kind -> its modes.
POLICY_MODES: Final[Mapping[str, tuple[str, ...]]] = {
    **{guardrail_kind(name): GUARDRAIL_MODES for name in GUARDRAILS},
    **DETECTOR_KINDS,
    CACHE: CACHE_MODES,
}
