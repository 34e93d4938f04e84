"""Fixtures shared by the unit tests: one valid event of every type (`events`), and `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from schemas.events.v1 import (
    Anomaly,
    BudgetRecord,
    BudgetState,
    CostEvent,
    DeadLetter,
    DriftReport,
    EnforcementDecision,
    Event,
    GuardrailEvent,
    GuardrailSummary,
    IngestTokenRecord,
    KeyRecord,
    LlmjackingPolicyRecord,
    RequestEvent,
    SpanEvent,
    ToolCall,
)

NOW = datetime.now(UTC).replace(microsecond=123000)


def sample_events() -> dict[str, Event]:
    """event_type -> one event with most optional fields set."""
    later = NOW + timedelta(seconds=1)
    return {
        "request": RequestEvent(
            request_id="req-1",
            ts_start=NOW,
            ts_end=later,
            latency_ms=1000.5,
            ttft_ms=120.0,
            key_id="key-1",
            org="acme",
            team="search",
            project="bot",
            user="ann",
            session_id="sess-1",
            provider="openai",
            model_requested="gpt-4o",
            model_used="gpt-4o-2024",
            endpoint="/v1/chat/completions",
            status_code=200,
            input_tokens=100,
            output_tokens=50,
            tool_calls=[ToolCall(name="search", arguments_hash="h1")],
            enforcement={"rate_limit": "ok"},
            guardrails=[
                GuardrailSummary(guardrail="pii", stage="input", action="redact", category="email")
            ],
        ),
        "span": SpanEvent(
            trace_id="t1",
            span_id="s1",
            name="chat",
            kind="LLM",
            start_ts=NOW,
            end_ts=later,
            duration_ms=1000.0,
            status="ok",
            model="gpt-4o",
            attributes={"llm.system": "openai"},
            finish_reasons=["stop"],
        ),
        "guardrail": GuardrailEvent(
            request_id="req-1",
            key_id="key-1",
            org="acme",
            guardrail="pii",
            stage="input",
            action="block",
            category="ssn",
            excerpt="***",
        ),
        "cost": CostEvent(
            request_id="req-1",
            request_ts=NOW,
            key_id="key-1",
            org="acme",
            team="search",
            project="bot",
            provider="openai",
            model="gpt-4o",
            input_tokens=100,
            output_tokens=50,
            input_cost=Decimal("0.00025"),
            output_cost=Decimal("0.0005"),
            total_cost=Decimal("0.00075"),
            price_source="genai-prices@0.2.3",
            priced=True,
        ),
        "budget_state": BudgetState(
            budget_id="b1",
            subject="team:acme/search",
            period="month",
            period_start=NOW,
            period_end=later,
            spent_usd=Decimal("12.5"),
            limit_usd=Decimal("100"),
            percent_used=12.5,
        ),
        "anomaly": Anomaly(
            kind="llmjacking",
            subject="key:key-1",
            score=0.97,
            severity="high",
            signals=["new_country"],
            evidence={"ip": "203.0.113.9", "at": NOW},
        ),
        "drift": DriftReport(
            scope="app:bot/model:gpt-4o",
            metric="prompt_chars",
            statistic="psi",
            value=0.3,
            threshold=0.2,
            drifted=True,
            window_start=NOW,
            window_end=later,
        ),
        "enforcement": EnforcementDecision(
            subject="key:key-1", action="block", reason="llmjacking", source="llmjacking"
        ),
        "key": KeyRecord(key_id="key-1", key_hash="ab" * 32, org="acme", created_by="root"),
        "ingest_token": IngestTokenRecord(
            token_id="itok_1", token_hash="cd" * 32, org="acme", team="ml", name="otel"
        ),
        "budget": BudgetRecord(
            budget_id="b1", subject="team:acme/search", period="month", limit_usd=Decimal("100")
        ),
        "policy": LlmjackingPolicyRecord(
            policy_id="p1", subject="org:acme", kind="llmjacking", mode="enforce"
        ),
        "dead_letter": DeadLetter(
            original_topic="meterline.requests", error="bad", stage="gateway", payload="{"
        ),
    }


@pytest.fixture
def events() -> dict[str, Event]:
    return sample_events()


@pytest.fixture
def now() -> datetime:
    return NOW
