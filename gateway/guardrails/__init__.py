"""Input and output guardrails: PII, secrets and prompt injection, each `off`, `monitor`,
`redact` or `block` per key or org (ARCHITECTURE §8, the step before forwarding).

`taxonomy` says what is detected, `scanner` finds it, `redaction` masks it, `stream`
guards streamed text, `policies` resolves modes, `service.Guardrails` ties them to a
request.
"""

from gateway.guardrails.policies import GuardrailPolicies, policy_id_for
from gateway.guardrails.redaction import excerpt, redact
from gateway.guardrails.scanner import scan
from gateway.guardrails.service import Guardrails
from gateway.guardrails.stream import Hit, StreamGuard
from gateway.guardrails.taxonomy import Finding

__all__ = [
    "Finding",
    "GuardrailPolicies",
    "Guardrails",
    "Hit",
    "StreamGuard",
    "excerpt",
    "policy_id_for",
    "redact",
    "scan",
]
