"""Alerts as Slack-compatible webhook bodies."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from meterline.settings import AlertSettings
from processors.alerts.logic import Alert, Alerter, Notice
from processors.alerts.slack import REDACTED, slack_message
from schemas.events.v1 import Anomaly, EnforcementDecision

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
SECRET = "ml-" + "A1b2C3d4" * 5


def alerter() -> Alerter:
    return Alerter(
        AlertSettings(dedup_window_s=600, max_age_s=0),
        dashboard_url="http://127.0.0.1:8501",
        clock=lambda: 0.0,
        now=lambda: NOW,
    )


def block(subject: str, source: str = "llmjacking") -> Notice:
    decision = EnforcementDecision(
        subject=subject,
        action="block",
        reason="40 distinct models in 60 s",
        source=source,  # type: ignore[arg-type]
        decided_at=NOW,
    )
    return alerter().on_decision(subject.encode(), decision.to_json(), NOW).notices[0]


def all_text(body: dict[str, object]) -> str:
    return orjson.dumps(body).decode()


def test_body_is_slack_shaped_with_severity_subject_reason_source_and_evidence() -> None:
    anomaly = Anomaly(
        kind="llmjacking",
        subject="key:key_1",
        score=0.97,
        severity="critical",
        signals=["40 distinct models in 60 s", "new client IP"],
        evidence={"models": 40, "client_ip": "203.0.113.9", "first_seen": NOW},
        source="processors.llmjacking",
    )
    notice = alerter().on_anomaly(anomaly.to_json()).notices[0]

    body = slack_message(notice.alert, notice.suppressed_before)

    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("[CRITICAL] LLMjacking suspected on key:key_1: ")
    assert "http://127.0.0.1:8501/security?subject=key%3Akey_1" in body["text"]
    types = [block["type"] for block in body["blocks"]]
    assert types[0] == "header" and types[-1] == "context"
    assert all(t in {"header", "section", "context"} for t in types)
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert fields == [
        "*Severity*\nCRITICAL",
        "*Subject*\n`key:key_1`",
        "*Source*\nprocessors.llmjacking",
        "*Kind*\nanomaly:llmjacking",
    ]
    text = all_text(body)
    assert "• 40 distinct models in 60 s" in text
    assert "• client_ip: 203.0.113.9" in text and "• score: 0.97" in text
    assert "• first_seen: 2025-03-10T12:00:00Z" in text
    assert "<http://127.0.0.1:8501/security?subject=key%3Akey_1|Open key:key_1" in text


def test_key_block_tells_the_owner_to_rotate_and_how_to_unblock() -> None:
    notice = block("key:key_1a2b")

    body = slack_message(notice.alert)

    for text in (body["text"], all_text(body)):
        assert "Key key_1a2b is blocked" in text
        assert "rotate it" in text
        assert "POST /admin/keys" in text and "meterline keys create" in text
        assert "meterline unblock key:key_1a2b" in text


def test_other_blocks_say_how_to_lift_without_key_rotation() -> None:
    body = slack_message(block("team:acme/ml", source="budget").alert)

    assert "meterline unblock team:acme/ml" in body["text"]
    assert "rotate" not in all_text(body)
    assert "security?subject" not in all_text(body)  # budget decisions are not security


def test_suppressed_count_is_mentioned() -> None:
    notice = block("key:key_1")

    body = slack_message(notice.alert, suppressed_before=19)

    assert "19 similar alerts" in body["text"]
    assert "19 similar alerts" in body["blocks"][-1]["elements"][0]["text"]
    assert "suppressed" not in slack_message(notice.alert)["text"]


def test_no_secrets_reach_the_webhook() -> None:
    alert = Alert(
        category="anomaly",
        kind="anomaly:llmjacking",
        subject="key:key_1",
        severity="high",
        title="LLMjacking suspected on key:key_1",
        reason=f"stolen key {SECRET} seen from 2 networks",
        source="processors.llmjacking",
        at=NOW,
        signals=(f"Authorization: Bearer {SECRET}",),
        evidence={
            "api_key": "whatever",
            "authorization": "Basic abc",
            "sample": f"used {SECRET} and sk-proj-{'x' * 30}",
            "key_id": "key_1",
        },
    )

    text = all_text(slack_message(alert))

    assert SECRET not in text and "whatever" not in text and "Basic abc" not in text
    assert "sk-proj" not in text
    assert f"api_key: {REDACTED}" in text and "key_id: key_1" in text


def test_mrkdwn_control_characters_and_long_values_are_tamed() -> None:
    alert = Alert(
        category="anomaly",
        kind="anomaly:agent_loop",
        subject="session:<s1>",
        severity="medium",
        title="x" * 400,
        reason="loop <!channel> & more",
        source="processors.agent_loop",
        at=NOW,
        evidence={"calls": list(range(500))},
    )

    body = slack_message(alert)

    assert len(body["blocks"][0]["text"]["text"]) <= 150
    text = all_text(body)
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; more" in text
    assert "`session:&lt;s1&gt;`" in text
    evidence = next(b["text"]["text"] for b in body["blocks"] if "*Evidence*" in str(b))
    assert evidence.startswith("*Evidence*\n• calls: [0,1,2,") and evidence.endswith("…")
    assert len(evidence) < 250
