"""Mode resolution: key beats user, team, project and org, which beat the default."""

from __future__ import annotations

import orjson
import pytest

from gateway.control import apply_control_record
from gateway.guardrails import GuardrailPolicies, policy_id_for
from gateway.keys import KeyStore
from schemas.subjects import attribution_subjects

DEFAULTS = {"pii": "monitor", "secrets": "redact", "prompt_injection": "monitor"}
SUBJECTS = attribution_subjects("key_1", "acme", "ml", "", "ana")


def _record(subject: str, kind: str, mode: str, **extra: object) -> bytes:
    policy_id = policy_id_for(subject, kind)
    # Built by hand: the tests also send kinds and modes a valid record cannot have.
    fields = {"policy_id": policy_id, "subject": subject, "kind": kind, "mode": mode, **extra}
    return orjson.dumps({"event_type": "policy", **fields})


def _apply(policies: GuardrailPolicies, value: bytes | None, key: bytes = b"policy:x") -> bool:
    return apply_control_record(KeyStore(), key, value, None, policies)


def test_defaults_apply_without_policies_and_missing_guardrails_are_off() -> None:
    assert GuardrailPolicies(DEFAULTS).modes(SUBJECTS) == DEFAULTS
    assert GuardrailPolicies({"pii": "block"}).modes(SUBJECTS) == {
        "pii": "block",
        "secrets": "off",
        "prompt_injection": "off",
    }
    with pytest.raises(ValueError, match="unknown guardrails"):
        GuardrailPolicies({"toxicity": "block"})
    with pytest.raises(ValueError, match="unknown modes"):
        GuardrailPolicies({"pii": "enforce"})


def test_key_beats_team_beats_org_beats_default() -> None:
    policies = GuardrailPolicies(DEFAULTS)
    assert _apply(policies, _record("org:acme", "guardrail:pii", "block"))
    assert policies.modes(SUBJECTS)["pii"] == "block"
    assert policies.modes(attribution_subjects("key_2", "other", "", "", ""))["pii"] == "monitor"
    assert _apply(policies, _record("team:acme/ml", "guardrail:pii", "redact"))
    assert policies.modes(SUBJECTS)["pii"] == "redact"
    assert _apply(policies, _record("key:key_1", "guardrail:pii", "off"))
    assert policies.modes(SUBJECTS) == {**DEFAULTS, "pii": "off"}
    # the same subject and kind again replaces, it does not add
    assert _apply(policies, _record("key:key_1", "guardrail:pii", "monitor"))
    assert len(policies) == 3 and policies.modes(SUBJECTS)["pii"] == "monitor"


def test_deletion_and_tombstones_fall_back_to_the_next_level() -> None:
    policies = GuardrailPolicies(DEFAULTS)
    _apply(policies, _record("org:acme", "guardrail:secrets", "block"))
    _apply(policies, _record("key:key_1", "guardrail:secrets", "off"))
    assert policies.modes(SUBJECTS)["secrets"] == "off"
    deleted = _record("key:key_1", "guardrail:secrets", "off", deleted=True)
    assert _apply(policies, deleted)
    assert policies.modes(SUBJECTS)["secrets"] == "block"
    org_id = policy_id_for("org:acme", "guardrail:secrets")
    assert _apply(policies, None, f"policy:{org_id}".encode())
    assert policies.modes(SUBJECTS)["secrets"] == "redact" and len(policies) == 0


def test_other_policy_kinds_and_garbage_are_ignored() -> None:
    policies = GuardrailPolicies(DEFAULTS)
    for value in (
        _record("org:acme", "llmjacking", "enforce"),
        _record("org:acme", "guardrail:toxicity", "block"),
        _record("org:acme", "guardrail:pii", "enforce"),
        orjson.dumps({"event_type": "policy", "policy_id": 1}),
    ):
        assert _apply(policies, value) is False
    assert _apply(policies, None, b"policy:unknown") is False
    assert len(policies) == 0 and policies.modes(SUBJECTS) == DEFAULTS
