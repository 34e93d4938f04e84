"""Policy records: one model per kind (a union discriminated on `kind`), same wire format."""

from __future__ import annotations

from typing import get_args

import orjson
import pytest
from pydantic import ValidationError

from schemas.events import (
    AgentLoopPolicyRecord,
    CachePolicyRecord,
    GuardrailPolicyRecord,
    LlmjackingPolicyRecord,
    policy_record,
    policy_record_json,
)
from schemas.events.v1 import POLICY_RECORD_MODELS
from schemas.policies import (
    GUARDRAILS,
    POLICY_MODES,
    GuardrailKind,
    guardrail_kind,
    guardrail_of,
)

# Exactly what the admin API published before policy records were typed per kind.
WIRE = (
    b'{"event_type":"policy","event_id":"e1","schema_version":1,'
    b'"ts":"2026-01-01T00:00:00.000Z","source":"meterline","policy_id":"p","subject":"org:a",'
    b'"kind":"%s","mode":"%s","params":{},"deleted":false,"created_by":"admin"}'
)


@pytest.mark.parametrize(
    ("kind", "mode", "model"),
    [
        ("guardrail:pii", "redact", GuardrailPolicyRecord),
        ("guardrail:prompt_injection", "block", GuardrailPolicyRecord),
        ("llmjacking", "enforce", LlmjackingPolicyRecord),
        ("agent_loop", "throttle", AgentLoopPolicyRecord),
        ("cache", "semantic", CachePolicyRecord),
    ],
)
def test_existing_records_parse_to_their_kind_and_serialize_unchanged(
    kind: str, mode: str, model: type
) -> None:
    wire = WIRE % (kind.encode(), mode.encode())

    record = policy_record_json(wire)

    assert type(record) is model
    assert record.to_json() == wire
    assert policy_record(orjson.loads(wire)) == record


@pytest.mark.parametrize(
    ("kind", "mode"),
    [("guardrail:pii", "enforce"), ("llmjacking", "block"), ("guardrail:toxicity", "block")],
)
def test_a_mode_outside_its_kind_or_an_unknown_kind_does_not_validate(kind: str, mode: str) -> None:
    with pytest.raises(ValidationError):
        policy_record_json(WIRE % (kind.encode(), mode.encode()))


def test_the_models_and_the_modes_table_agree() -> None:
    from_models = {}
    for model in POLICY_RECORD_MODELS:
        modes = get_args(model.model_fields["mode"].annotation)
        for kind in get_args(model.model_fields["kind"].annotation):
            from_models[kind] = modes
    assert from_models == dict(POLICY_MODES)
    assert get_args(GuardrailKind) == tuple(guardrail_kind(g) for g in GUARDRAILS)
    assert [guardrail_of(k) for k in ("guardrail:pii", "guardrail:x", "llmjacking")] == [
        "pii",
        None,
        None,
    ]
