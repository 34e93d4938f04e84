"""In-process agent-loop draws: sessions as the gateway and ingest turn them into events,
runaways caught, legitimate sessions left alone, the figures over draws."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace

import orjson

from meterline.evaluate.agent_sessions import (
    LOOP_KINDS,
    AgentSession,
    draw_legit_session,
    draw_loop_session,
)
from meterline.evaluate.agentloop_draws import (
    AgentDrawConfig,
    SessionResult,
    agentloop_draw,
    run_sessions,
    session_request,
    session_spans,
)
from meterline.evaluate.agentloop_summary import format_agentloop, summarize_agentloop
from meterline.evaluate.draws import T0
from meterline.settings import AgentLoopSettings
from schemas.tool_arguments import tool_arguments_hash

SETTINGS = AgentLoopSettings()


def _run(session: AgentSession, seed: str) -> SessionResult:
    return run_sessions([session], [0.0], SETTINGS, random.Random(seed))[0]


def test_a_draw_is_reproducible() -> None:
    config = AgentDrawConfig(legit_sessions=1)
    first, again = agentloop_draw(4, 1, config), agentloop_draw(4, 1, config)
    assert first == again
    assert first.loop.kind == LOOP_KINDS[1] and first.loop.loop_start is not None
    assert agentloop_draw(5, 1, config).loop.params != first.loop.params


def test_steps_become_the_gateways_request_events() -> None:
    session = draw_loop_session(random.Random("r"), "exact_repeat", "s-1", 6)
    turn = next(t for t in session.turns if t.call is not None)
    event = session_request(session, turn, T0, 1)
    assert event.session_id == "s-1" and event.ts_end > event.ts_start
    messages = orjson.dumps(list(turn.messages))
    assert event.prompt_hash == hashlib.sha256(messages).hexdigest()
    assert event.prompt_signature is not None and event.prompt_chars > 0
    name, arguments, _ = turn.call
    assert [(c.name, c.arguments_hash) for c in event.tool_calls] == [
        (name, hashlib.sha256(arguments.encode()).hexdigest())
    ]


def test_spans_go_through_ingest_with_the_session_and_the_arguments() -> None:
    session = draw_loop_session(random.Random("s"), "exact_repeat", "s-2", 6)
    session = replace(session, channel="spans", instrumentation="genai", capture_content=True)
    turn = next(t for t in session.turns if t.call is not None)
    llm, tool = session_spans(session, turn, T0, "a" * 32, random.Random(1))
    assert llm.kind == "LLM" and llm.session_id == "s-2" and llm.input_tokens > 0
    assert tool.tool_name == turn.call[0] and tool.session_id == "s-2"
    assert tool.tool_arguments_hash == tool_arguments_hash(turn.call[1])
    assert tool.start_ts == llm.end_ts  # the tool runs once the model has answered


def test_every_loop_kind_is_caught_after_it_began_through_the_gateway() -> None:
    for kind in LOOP_KINDS:
        session = draw_loop_session(random.Random(f"k:{kind}"), kind, f"s-{kind}", 110)
        result = _run(replace(session, channel="gateway"), kind)
        assert result.flagged and result.flagged_step >= result.loop_start, kind
        if kind == "exact_repeat":  # the threshold-th identical call is the one flagged
            assert result.repeats == SETTINGS.repeat_threshold - 1
            assert "repeated_tool_call" in result.signals


def test_a_loop_seen_only_through_spans_is_caught() -> None:
    session = draw_loop_session(random.Random("spans"), "exact_repeat", "s-3", 30)
    session = replace(session, channel="spans", instrumentation="genai", capture_content=True)
    result = _run(session, "spans")
    assert result.flagged and "repeated_tool_call" in result.signals
    # Flagged with the export batch holding the threshold-th call's tool span, at most
    # one batch interval (5 s) after that tool ran: by then the agent went on a little.
    fifth = session.turns[session.loop_start - 1 + SETTINGS.repeat_threshold - 1]
    exported = fifth.at_s + fifth.latency_s + fifth.tool_s + 5.05
    started = sum(turn.at_s <= exported for turn in session.turns)
    assert session.loop_start + SETTINGS.repeat_threshold - 1 <= result.flagged_step <= started


def test_a_long_legitimate_session_through_the_gateway_is_not_flagged() -> None:
    for kind in ("varied", "paging", "research", "coding"):
        session = replace(draw_legit_session(random.Random(kind), kind, kind), channel="gateway")
        result = _run(session, kind)
        assert len(session.turns) >= 20
        # Limits are off by default: nothing flags a session that makes progress.
        assert not result.flagged, (kind, result.signals)


def test_the_summary_reads_the_draws() -> None:
    config = AgentDrawConfig(legit_sessions=1, loop_steps=40)
    results = [agentloop_draw(7, index, config) for index in range(2)]
    summary = summarize_agentloop(results)
    caught = [r.loop for r in results if r.loop.flagged]
    assert summary.draws == 2 and summary.legit == 2 and summary.seeds == [7]
    assert summary.recall == len(caught) / 2
    assert summary.fp == sum(s.flagged for r in results for s in r.legit)
    text = format_agentloop(summary)
    assert f"false-positive legitimate sessions: {summary.fp} of 2 flagged" in text
    assert f"recall (flagged after the loop began) {summary.recall:.3f}" in text
    for kind in summary.by_kind:
        assert f"    {kind} " in text
