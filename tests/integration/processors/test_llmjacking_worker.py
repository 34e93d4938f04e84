"""LLMjacking and agent loops in the real worker (`python -m processors`) against the real
tansu broker: normal keys stay quiet, the stolen key of an enforcing org is blocked (and
only it), a looping session is blocked as a session."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from meterline.settings import Settings
from schemas.events.v1 import Anomaly, EnforcementDecision, LlmjackingPolicyRecord, RequestEvent
from schemas.topics import ANOMALIES, CONTROL, ENFORCEMENT, REQUESTS
from tests.conftest import free_port
from tests.integration.processors.worker_helpers import Record, TopicReader, produce, worker_process
from tests.unit.processors.agentloop.test_logic import looping_session
from tests.unit.processors.llmjacking.test_logic import after_normal, attack, normal_key

pytestmark = pytest.mark.integration


def keyed(events: list[RequestEvent]) -> list[Record]:
    return [((e.key_id or "").encode(), e.to_json()) for e in events]


def test_stolen_key_blocked_and_looping_session_blocked(
    broker: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        broker,
        processors_port=free_port(),
        processors={
            "llmjacking": {"learning_requests": 60, "learning_s": 6 * 3600},
            "agent_loop": {"default_mode": "block"},
        },
    )
    policy = LlmjackingPolicyRecord(
        policy_id="p-acme", subject="org:acme", kind="llmjacking", mode="enforce"
    )
    produce(settings, CONTROL, [(b"policy:p-acme", policy.to_json())])
    keys = [normal_key(10 + i, f"n{i}", org="acme") for i in range(4)]
    victim = normal_key(20, "victim", org="acme")
    history = sorted((e for k in [*keys, victim] for e in k), key=lambda e: e.ts_start)
    stolen = attack("victim", after_normal(victim), org="acme")
    loop = looping_session("agent-run-1", "repeat")
    produce(settings, REQUESTS, keyed(history) + keyed(stolen) + keyed(loop))
    log_path = tmp_path / "worker.log"
    reader = TopicReader(settings, [ANOMALIES, ENFORCEMENT])
    anomalies = reader.records[settings.topic(ANOMALIES)]
    enforcement = reader.records[settings.topic(ENFORCEMENT)]

    def both_blocked() -> bool:
        # Outputs go out in batches per topic: an anomaly can arrive after its block.
        keys_ = {key for key, _ in enforcement}
        flagged = {key for key, _ in anomalies}
        return {b"llmjacking|key:victim", b"agent_loop|session:agent-run-1"} <= keys_ and {
            b"key:victim",
            b"session:agent-run-1",
        } <= flagged

    total = len(history) + len(stolen) + len(loop)
    metrics_url = f"http://{settings.host}:{settings.processors_port}/metrics"

    def all_processed() -> bool:
        # A clean stop waits for every fetched message: let the backlog drain first.
        text = httpx.get(metrics_url).text
        agents = ("llmjacking", "agentloop_requests", "cost", "drift")
        return all(f'total{{agent="{agent}"}} {total}' in text for agent in agents)

    with worker_process(settings, log_path) as worker:
        reader.read_until(both_blocked, timeout_s=60, log=log_path)
        reader.read_until(all_processed, timeout_s=60, log=log_path)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    reader.close()

    found = [Anomaly.model_validate_json(value) for _, value in anomalies]
    # The attack also moves its scope's traffic (longer prompts, another model): drift may
    # report that scope, which is right and judged in the drift tests; here, per key and
    # session, only the stolen key and the looping session are flagged.
    subjects = {a.subject for a in found if a.kind != "drift"}
    assert subjects == {"key:victim", "session:agent-run-1"}, subjects  # normal keys quiet
    jacked = [a for a in found if a.kind == "llmjacking"]
    # The probes come first; whether the block lands before the enumeration also counts
    # depends on how the other keys' traffic interleaves (their peers' maturity).
    signals = set().union(*(a.signals for a in jacked))
    assert jacked and "validation_probes" in signals, signals
    assert signals & {"new_networks", "new_user_agents", "model_enumeration"}, signals
    decisions = {key: EnforcementDecision.model_validate_json(v) for key, v in enforcement if v}
    block = decisions[b"llmjacking|key:victim"]
    assert block.action == "block" and block.source == "llmjacking"
    assert block.subject == "key:victim" and block.expires_at is not None
    assert block.anomaly_id in {a.anomaly_id for a in jacked}
    session = decisions[b"agent_loop|session:agent-run-1"]
    assert session.action == "block" and session.subject == "session:agent-run-1"
    assert {k for k in decisions} == {b"llmjacking|key:victim", b"agent_loop|session:agent-run-1"}
    assert (settings.data_dir / "llmjacking" / "state.pickle").is_file()  # saved on stop
