"""`RequestEvent.error_type` values that other services act on.

The gateway records why it refused a request (its errors' codes, `gateway.errors`); the
detectors (processors/llmjacking, processors/agentloop) must tell a refusal the gateway
enforced from an upstream failure. Both import these names, so a renamed code cannot
silently turn enforced refusals into "fresh activity" a detector learns from.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BLOCKED",
    "BUDGET_EXCEEDED",
    "ENFORCED_ERRORS",
    "MODEL_NOT_FOUND",
    "RATE_LIMIT_EXCEEDED",
    "THROTTLED",
]

BLOCKED: Final = "blocked"  # an enforcement decision blocks one of the request's subjects
BUDGET_EXCEEDED: Final = "budget_exceeded"  # a hard budget limit with action block
RATE_LIMIT_EXCEEDED: Final = "rate_limit_exceeded"  # the key's own RPM/TPM bucket is empty
THROTTLED: Final = "throttled"  # a throttle decision's RPM is used up
MODEL_NOT_FOUND: Final = "model_not_found"  # no provider serves the requested model

# Requests the gateway refused because of a decision or a limit: no model was called, so
# detectors neither learn from them nor count them as evidence (a blocked attacker keeps
# knocking; that must not look like fresh activity).
ENFORCED_ERRORS: Final = frozenset({BLOCKED, BUDGET_EXCEEDED, THROTTLED, RATE_LIMIT_EXCEEDED})
