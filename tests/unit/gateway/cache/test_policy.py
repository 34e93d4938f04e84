"""Cache modes per subject: records, YAML, defaults (gateway/cache/policy.py)."""

from __future__ import annotations

import orjson

from gateway.cache.policy import CachePolicies, policy_params_error
from meterline.settings import CacheSettings

SUBJECTS = ("key:k1", "user:ana", "team:acme/search", "project:acme/p1", "org:acme")


def record(subject: str, mode: str, **params: object) -> dict:
    return {
        "event_type": "policy",
        "policy_id": f"pol_{subject}",
        "subject": subject,
        "kind": "cache",
        "mode": mode,
        "params": params,
    }


def test_the_most_specific_subject_wins_and_params_fall_back_to_defaults() -> None:
    settings = CacheSettings(
        mode="off",
        ttl_s=60,
        similarity=0.9,
        policies={"org:acme": {"mode": "exact", "ttl_s": 5}},
    )
    policies = CachePolicies(settings)
    assert policies.for_subjects(SUBJECTS).mode == "exact"
    assert policies.for_subjects(SUBJECTS).ttl_s == 5
    assert policies.for_subjects(("org:globex",)).mode == "off"
    assert policies.apply_record(record("key:k1", "semantic", similarity=0.8, scope="key"))
    chosen = policies.for_subjects(SUBJECTS)
    assert (chosen.mode, chosen.ttl_s, chosen.similarity, chosen.scope) == (
        "semantic",
        60,
        0.8,
        "key",
    )


def test_records_arrive_and_leave_through_the_control_topic() -> None:
    policies = CachePolicies(CacheSettings())
    assert not policies.any_on
    value = orjson.dumps(record("org:acme", "exact"))
    assert policies.apply(b"policy:pol_org:acme", value)
    assert policies.any_on and policies.for_subjects(SUBJECTS).mode == "exact"
    assert policies.listing()[0]["subject"] == "org:acme"
    assert policies.apply(b"policy:pol_org:acme", None)  # tombstone
    assert not policies.any_on
    guardrail = {**record("org:acme", "block"), "kind": "guardrail:pii"}
    assert not policies.apply(b"policy:x", orjson.dumps(guardrail))
    assert not policies.apply_record(record("org:acme", "exact", ttl_s=-1))


def test_params_are_checked_one_by_one() -> None:
    assert policy_params_error({"ttl_s": 10, "similarity": 1, "scope": "key"}) is None
    assert policy_params_error({"ttl_s": 0}) == ("ttl_s", "ttl_s must be a number of seconds > 0")
    assert policy_params_error({"similarity": 1.5})[0] == "similarity"  # type: ignore[index]
    assert policy_params_error({"similarity": True})[0] == "similarity"  # type: ignore[index]
    assert policy_params_error({"scope": "team"})[0] == "scope"  # type: ignore[index]
    assert policy_params_error({"ttl": 1})[0] == "ttl"  # type: ignore[index]
