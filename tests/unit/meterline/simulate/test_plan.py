"""Simulation plans: deterministic for a seed, and shaped like the tradecraft they play."""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path

import pytest

from meterline.simulate import SCENARIOS, SimulationConfig, build_plan, read_labels
from meterline.simulate.catalog import PROXY_USER_AGENTS, SERVED_MODELS
from meterline.simulate.labels import GroundTruth, write_labels
from meterline.simulate.scenarios.llmjacking import LLMjackingParams, llmjacking_steps


def _plan(scenario: str, seed: int = 7, duration_s: float = 90.0):  # type: ignore[no-untyped-def]
    return build_plan(SimulationConfig(scenario, rate=6.0, duration_s=duration_s, seed=seed))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_seed_same_plan_other_seed_other_plan(scenario: str) -> None:
    first, again, other = _plan(scenario), _plan(scenario), _plan(scenario, seed=8)
    assert first.keys == again.keys and first.budgets == again.budgets
    steps = first.take()
    assert steps == again.take()
    assert steps != other.take()
    assert [s.at_s for s in steps] == sorted(s.at_s for s in steps)
    assert all(s.at_s < 90.0 for s in steps if s.scenario == "normal")


def test_normal_runs_forever_and_is_read_lazily() -> None:
    plan = _plan("normal", duration_s=0)
    assert len(plan.take(limit=500)) == 500
    assert plan.take(until_s=1e9, limit=10)[-1].at_s > 0


def test_an_attack_does_not_change_the_traffic_around_it() -> None:
    normal = [s for s in _plan("normal").take()]
    mixed = [s for s in _plan("mixed").take() if s.scenario == "normal"]
    assert mixed == normal


def test_normal_keys_call_from_home_networks_with_their_own_user_agent() -> None:
    steps = _plan("normal").take()
    networks: dict[str, set[str]] = {}
    agents: dict[str, set[str]] = {}
    for step in steps:
        assert step.client_ip and step.user_agent and step.session_id and not step.malicious
        ipaddress.ip_address(step.client_ip)
        networks.setdefault(step.key, set()).add(step.client_ip.rsplit(".", 1)[0])
        agents.setdefault(step.key, set()).add(step.user_agent)
    assert all(1 <= len(n) <= 3 for n in networks.values())
    assert all(len(a) == 1 for a in agents.values())
    assert len({a for values in agents.values() for a in values}) == len(agents)


def test_llmjacking_stages_in_order_from_new_networks() -> None:
    plan = _plan("llmjacking")
    attack = [s for s in plan.take() if s.scenario == "llmjacking"]
    assert {s.key for s in attack} == {attack[0].key}
    assert attack[0].key in {k.name for k in plan.keys}  # a key in daily use was stolen
    stages = [s.stage for s in attack]
    assert stages == sorted(stages, key=["validate", "enumerate", "probe", "ramp"].index)
    assert all(s.malicious and s.detector == "llmjacking" for s in attack)
    validate = [s for s in attack if s.stage == "validate"]
    assert all(s.max_tokens == 1 for s in validate)
    enumerate_ = [s for s in attack if s.stage == "enumerate"]
    assert enumerate_[0].action == "models"
    assert any(s.model not in SERVED_MODELS for s in enumerate_[1:])  # 404s
    assert all(s.max_tokens == -1 for s in attack if s.stage == "probe")
    ramp = [s for s in attack if s.stage == "ramp"]
    assert len({s.client_ip.rsplit(".", 1)[0] for s in ramp if s.client_ip}) >= 10
    assert {s.user_agent for s in ramp} <= set(PROXY_USER_AGENTS)
    home = {s.client_ip for s in plan.take() if s.key == attack[0].key and not s.malicious}
    assert not home & {s.client_ip for s in ramp}
    # Volume ramps: the second half of the ramp is busier than the first.
    middle = (ramp[0].at_s + ramp[-1].at_s) / 2
    assert sum(s.at_s > middle for s in ramp) > sum(s.at_s <= middle for s in ramp)


def test_llmjacking_stages_are_optional_and_timed_by_parameters() -> None:
    import random

    params = LLMjackingParams(start_s=5.0, validate=False, enumerate=False, ramp=False)
    steps = list(llmjacking_steps(random.Random(1), "k", params))
    assert [s.stage for s in steps] == ["probe"] * params.probe_calls
    assert steps[0].at_s == 5.0


def test_agent_loops_repeat_while_legit_sessions_progress() -> None:
    steps = [s for s in _plan("agent-loop").take() if s.scenario == "agent-loop"]
    sessions: dict[str, list] = {}
    for step in steps:
        sessions.setdefault(step.session_id or "", []).append(step)
    for session_id, session in sessions.items():
        calls = [(s.tools[0]["function"]["name"], s.tool_arguments) for s in session if s.tools]
        if session_id.startswith("agent-legit"):
            assert len(session) >= 20 and len(set(calls)) == len(calls)
            assert not any(s.malicious for s in session)
        else:
            first_bad = next(i for i, s in enumerate(session) if s.malicious)
            assert all(s.malicious for s in session[first_bad:])
            assert all(s.detector == "agent_loop" for s in session[first_bad:])
            if "rephrase" not in session_id:
                repeated = Counter(calls[first_bad - 3 :]).most_common(1)[0][1]
                assert repeated >= 4
    assert any("oscillate" in s for s in sessions) and any("stuck" in s for s in sessions)


def test_budget_burn_and_drift() -> None:
    burn = _plan("budget-burn")
    assert len(burn.budgets) == 1 and burn.budgets[0].key in {k.name for k in burn.keys}
    drift = [s for s in _plan("drift").take() if s.scenario == "drift"]
    before = [len(str(s.messages[0]["content"])) for s in drift if s.stage == "baseline"]
    after = [len(str(s.messages[0]["content"])) for s in drift if s.stage == "shifted"]
    assert before and after and min(after) > max(before)
    assert all(s.app for s in drift)


def test_unknown_scenario_is_named() -> None:
    with pytest.raises(ValueError, match="available: normal"):
        _plan("nope")


def test_labels_keep_the_first_malicious_request_and_round_trip(tmp_path: Path) -> None:
    truth = GroundTruth()
    common = {"scenario": "normal", "stage": "normal", "detector": None}
    truth.record("key:k1", "acme-web-1", malicious=False, ts=100.0, **common)
    attack = {"scenario": "llmjacking", "detector": "llmjacking"}
    truth.record("key:k1", "acme-web-1", stage="validate", malicious=True, ts=130.5, **attack)
    truth.record("key:k1", "acme-web-1", stage="ramp", malicious=True, ts=140.0, **attack)
    truth.record("session:s", "s", malicious=False, ts=101.0, **common)
    path = tmp_path / "labels.jsonl"
    write_labels(path, truth.sorted())
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    key, session = read_labels(path)
    assert key.subject == "key:k1" and key.malicious and key.detector == "llmjacking"
    assert (key.scenario, key.stage) == ("llmjacking", "validate")
    assert key.first_request_ts == 100.0 and key.first_malicious_ts == 130.5
    assert (key.requests, key.malicious_requests) == (3, 2)
    assert not session.malicious and session.first_malicious_ts is None
