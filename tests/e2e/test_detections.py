"""Detection targets of the issue "Security: LLMjacking and runaway-agent detection",
checked through the real stack on a fixed seed: the `mixed` scenario (normal traffic with
a stolen key and runaway agents in it) is sent with the official openai SDK, the
detectors run in `enforce` for the attacked orgs, and their anomalies and decisions are
read back from the topics and scored against the simulator's ground truth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from meterline.evaluate.run import (
    EvalConfig,
    EvalReport,
    eval_stack_settings,
    evaluate_detections,
    format_report,
)
from meterline.runtime import Stack
from meterline.settings import Settings
from meterline.simulate import read_labels
from tests.e2e.stack_helpers import ADMIN_TOKEN

pytestmark = pytest.mark.e2e

SEED = 11
# Long enough for every agent session (the legit ones take ~30 s) and for the stolen key's
# whole tradecraft; the llmjacking detector judges each request as it arrives, so nothing
# waits for a window to close.
TRAFFIC_S = 40.0


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvalReport]:
    data_dir = tmp_path_factory.mktemp("detections")
    settings = eval_stack_settings(Settings(admin_token=ADMIN_TOKEN), data_dir)
    stack = Stack(settings, mock_provider=True)
    try:
        stack.start()
        config = EvalConfig(
            seed=SEED,
            duration_s=TRAFFIC_S,
            rate=5.0,
            settle_s=5.0,  # detections are made as requests arrive: only the pipeline drains
            labels_path=data_dir / "labels.jsonl",
        )
        result = evaluate_detections(stack.settings, config)
        print(format_report(result.scores))
        yield result
    finally:
        stack.stop()


def test_the_gateway_sees_each_simulated_client(report: EvalReport) -> None:
    events = report.collected.raw["requests"]
    addresses = {e["client_ip"] for e in events}
    agents = {e["user_agent"] for e in events}
    assert len(events) >= 5 * TRAFFIC_S
    assert "127.0.0.1" not in addresses and len(addresses) >= 50  # X-Forwarded-For, trusted
    assert any(a and a.startswith("oai-reverse-proxy") for a in agents)
    labels = report.simulation.labels
    assert sum(label.malicious for label in labels) >= 6
    assert report.labels_path and read_labels(report.labels_path) == labels


def test_llmjacking_recall_and_false_positive_keys(report: EvalReport) -> None:
    jacking = report.scores["llmjacking"]
    assert jacking.positives >= 1 and jacking.negatives >= 15
    assert jacking.recall is not None and jacking.recall >= 0.95, format_report(report.scores)
    assert jacking.false_positive_rate is not None
    wrongly_flagged = _anomalies_of(report, jacking.false_positive_subjects)
    # A normal key must never be blocked: that stops its owner's traffic.
    blocked = [
        d["subject"]
        for d in report.collected.raw.get("enforcement", [])
        if d.get("source") == "llmjacking"
        and d.get("action") == "block"
        and d.get("subject") in jacking.false_positive_subjects
    ]
    assert not blocked, json.dumps(wrongly_flagged, default=str)
    assert jacking.false_positive_rate <= 0.01, json.dumps(wrongly_flagged, default=str)


def test_the_stolen_key_is_blocked_within_30s_and_told_to_rotate(report: EvalReport) -> None:
    jacking = report.scores["llmjacking"]
    assert jacking.timings, f"no stolen key detected: {jacking.missed_subjects}"
    for timing in jacking.timings:
        assert timing.blocked_after_s is not None, f"{timing.subject} never blocked"
        assert timing.blocked_after_s <= 30.0, timing
    stolen = {t.subject for t in jacking.timings}
    decisions = [
        d
        for d in report.collected.raw["enforcement"]
        if d.get("source") == "llmjacking" and d.get("subject") in stolen
    ]
    # Blocking a compromised key stops its owner too: the decision says to rotate it.
    assert decisions and all("rotate" in d["reason"].lower() for d in decisions), decisions
    refused = [
        e
        for e in report.collected.raw["requests"]
        if f"key:{e['key_id']}" in stolen and e["status_code"] == 403
    ]
    assert refused, "the block reached the gateway"


def test_agent_loops_are_caught_within_5_repeated_steps(report: EvalReport) -> None:
    loops = report.scores["agent_loop"]
    assert loops.positives == 5  # repeat, stuck, oscillate, rephrase, cycle
    assert not loops.missed_subjects, format_report(report.scores)
    for timing in loops.timings:
        assert timing.requests_to_detect is not None and timing.requests_to_detect <= 5, timing


def test_no_legitimate_long_session_is_flagged(report: EvalReport) -> None:
    loops = report.scores["agent_loop"]
    legit = [
        label
        for label in report.simulation.labels
        if label.subject.startswith("session:") and "agent-legit" in label.subject
    ]
    assert len(legit) == 2 and all(label.requests >= 20 for label in legit)
    flagged = set(loops.false_positive_subjects)
    assert not flagged & {label.subject for label in legit}, flagged
    assert loops.false_positive_rate == 0.0, loops.false_positive_subjects


def _anomalies_of(report: EvalReport, subjects: list[str]) -> list[dict[str, Any]]:
    """What was raised against `subjects`: enough to tell a detector bug from a bad label."""
    keep = ("kind", "subject", "severity", "score", "signals", "evidence", "ts")
    return [
        {name: anomaly.get(name) for name in keep}
        for anomaly in report.collected.raw.get("anomalies", [])
        if anomaly.get("subject") in subjects
    ]
