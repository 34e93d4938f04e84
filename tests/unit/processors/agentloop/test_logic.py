"""AgentLoopDetector: loops caught within 5 repeated steps, long honest sessions left
alone, session subjects, policies. `session_steps()` is shared with the integration test."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meterline.settings import AgentLoopSettings
from processors.agentloop.logic import (
    KIND,
    AgentLoopDetector,
    parse_event,
    session_of,
)
from processors.agentloop.patterns import cycle_of, near_duplicate
from processors.llmjacking.policy import PolicyBook, Publication
from schemas.events.v1 import (
    AgentLoopPolicyRecord,
    Anomaly,
    CostEvent,
    EnforcementDecision,
    RequestEvent,
    SpanEvent,
    ToolCall,
)
from schemas.signature import prompt_signature
from schemas.tool_arguments import tool_arguments_hash
from schemas.topics import ENFORCEMENT, parse_routed_key, routed_key

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CONFIG = AgentLoopSettings()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def step(
    session: str | None,
    index: int,
    *,
    tool: tuple[str, str] | None = None,
    prompt: str | None = None,
    trace: str | None = None,
    org: str = "acme",
    tokens: int = 900,
) -> RequestEvent:
    text = prompt if prompt is not None else f"{session} step {index}"
    return RequestEvent(
        request_id=f"{session or trace}-{index}",
        ts_start=T0 + timedelta(seconds=2 * index),
        ts_end=T0 + timedelta(seconds=2 * index + 1),
        latency_ms=1000.0,
        key_id="k-agent",
        org=org,
        session_id=session,
        trace_id=trace,
        model_requested="gpt-4o-mini",
        endpoint="/v1/chat/completions",
        status_code=200,
        input_tokens=tokens,
        output_tokens=100,
        prompt_hash=digest(text),
        prompt_chars=len(text),
        prompt_signature=prompt_signature(text),
        tool_calls=[ToolCall(name=tool[0], arguments_hash=digest(tool[1]))] if tool else [],
    )


def honest_session(session: str, count: int, seed: int = 1) -> list[RequestEvent]:
    """A long agent session that makes progress: a growing conversation, a different
    call or arguments each step (tool names do repeat)."""
    rng = random.Random(seed)
    conversation = "Refactor the billing module. " * 3
    steps = []
    for index in range(count):
        name = rng.choice(("read_file", "write_file", "run_tests", "search"))
        steps.append(step(session, index, tool=(name, f'{{"n": {index}}}'), prompt=conversation))
        conversation += " ".join(rng.choice(("ok", "done", "file", "test")) for _ in range(30))
    return steps


def looping_session(session: str, pattern: str, loops: int = 8) -> list[RequestEvent]:
    """Three honest steps, then `pattern`; loop steps from index 3 on."""
    steps = honest_session(session, 3)
    calls = {
        "repeat": [("run_tests", '{"path": "tests"}')],
        "oscillate": [("write_file", '{"v": "a"}'), ("write_file", '{"v": "b"}')],
        "cycle": [("read_file", "a"), ("write_file", "a"), ("run_tests", "a")],
    }.get(pattern)
    frozen = "Make the failing test pass. " * 40
    for index in range(3, 3 + loops):
        grown = " tool result" * 10 * index
        if pattern == "rephrase":
            ask = f"{frozen} The build still fails. Try again (attempt {index})."
            steps.append(step(session, index, prompt=ask))
        elif pattern == "stuck":
            steps.append(step(session, index, tool=("run_tests", "{}"), prompt=frozen))
        else:
            assert calls is not None
            call = calls[(index - 3) % len(calls)]
            # the conversation grows by each call's result
            steps.append(step(session, index, tool=call, prompt=frozen + grown))
    return steps


def detector(default: str = "monitor", **config: object) -> AgentLoopDetector:
    return AgentLoopDetector(
        AgentLoopSettings.model_validate(config),
        PolicyBook(KIND, default),
        lambda: NOW,
    )


def run(det: AgentLoopDetector, events: list[RequestEvent]) -> list[Publication]:
    out: list[Publication] = []
    for event in events:
        out += det.observe_request(event)
    return out


def anomalies(items: list[Publication]) -> list[Anomaly]:
    return [i.value for i in items if isinstance(i.value, Anomaly)]


def decisions(items: list[Publication]) -> list[tuple[str, EnforcementDecision]]:
    return [(i.key, i.value) for i in items if isinstance(i.value, EnforcementDecision)]


def first_detection(det: AgentLoopDetector, events: list[RequestEvent]) -> tuple[int, Anomaly]:
    for index, event in enumerate(events):
        found = anomalies(det.observe_request(event))
        if found:
            return index, found[0]
    pytest.fail("never detected")


@pytest.mark.parametrize(
    ("pattern", "signal"),
    [
        ("repeat", "repeated_tool_call"),
        ("stuck", "repeated_tool_call"),
        ("oscillate", "oscillation"),
        ("cycle", "oscillation"),
        ("rephrase", "near_duplicate_prompts"),
    ],
)
def test_each_loop_is_caught_within_5_repeated_steps(pattern: str, signal: str) -> None:
    events = looping_session(f"s-{pattern}", pattern)
    first_repeat = 3 + {"oscillate": 2, "cycle": 3}.get(pattern, 1)  # the first round is new
    index, found = first_detection(detector(), events)

    assert index - first_repeat + 1 <= 5, index
    assert found.kind == "agent_loop" and found.subject == f"session:s-{pattern}"
    assert signal in found.signals and found.severity == "high"
    assert found.evidence["signal_request_ids"][signal][-1] == events[index].request_id
    assert set(found.evidence["sample_request_ids"]) <= {e.request_id for e in events}


def test_the_repeated_step_is_the_evidence() -> None:
    _, found = first_detection(detector(), looping_session("s1", "repeat"))
    repeated = found.evidence["signals"]["repeated_tool_call"]
    assert repeated == {
        "tool": "run_tests",
        "arguments_hash": digest('{"path": "tests"}'),
        "count": 5,
        "history": CONFIG.history,
    }
    _, cycle = first_detection(detector(), looping_session("s2", "oscillate"))
    write_a, write_b = digest('{"v": "a"}'), digest('{"v": "b"}')
    assert cycle.evidence["signals"]["oscillation"]["cycle"] == [
        f"tool:write_file:{write_a}",
        f"tool:write_file:{write_b}",
    ]


def test_a_single_a_b_a_is_not_a_loop_but_a_b_a_b_a_is() -> None:
    assert cycle_of(["x", "a", "b", "a"], 5) is None
    assert cycle_of(["x", "a", "b", "a", "b", "a"], 5) == ("a", "b")
    assert cycle_of(["a", "b", "c", "a", "b", "c", "a"], 5) == ("a", "b", "c")
    assert cycle_of(["a", "b", "c", "a", "b", "c", "a"], 3) is None  # needs 4 repeats


def test_a_long_honest_session_is_not_flagged() -> None:
    det = detector()
    events = honest_session("s-legit", 90, seed=5)
    assert not run(det, events)
    assert det.sessions["session:s-legit"].steps == 90


def test_a_growing_conversation_is_no_near_duplicate() -> None:
    short = "Refactor the billing module. " * 3
    longer = short + "ok done file test " * 8
    as_tuple = (digest(short), prompt_signature(short), len(short))
    assert not near_duplicate(
        as_tuple, (digest(longer), prompt_signature(longer), len(longer)), 0.9
    )
    same = (digest(short + "!"), prompt_signature(short + "!"), len(short) + 1)
    assert near_duplicate(as_tuple, same, 0.9)


def test_limits_are_off_unless_configured() -> None:
    det = detector()
    assert not anomalies(run(det, honest_session("s-long", 400)))


def test_step_and_cost_limits_are_medium_and_escalate_with_a_loop() -> None:
    det = detector(max_steps=20, max_session_usd="5")
    found = anomalies(run(det, honest_session("s-long", 22)))
    assert [(a.signals, a.severity) for a in found] == [(["step_limit"], "medium")]
    assert found[0].evidence["signals"]["step_limit"] == {"steps": 21, "limit": 20}
    cost = CostEvent(
        request_id="s-long-21",
        request_ts=T0,
        key_id="k-agent",
        org="acme",
        session_id="s-long",
        total_cost=Decimal("6"),
        price_source="override:test",
        priced=True,
    )
    [over] = anomalies(det.observe_cost(cost))
    assert over.signals == ["cost_limit", "step_limit"] and over.severity == "high"
    assert over.evidence["cost_usd"] == "6"
    assert not det.observe_cost(cost)  # the same CostEvent again


def test_session_id_falls_back_to_the_trace_and_spans_count_tool_calls() -> None:
    det = detector(default="block")
    traced = [step(None, i, trace="trace-1", tool=("search", "same")) for i in range(5)]
    found = run(det, traced)
    assert [a.subject for a in anomalies(found)] == ["session:trace-1"]
    assert anomalies(found)[0].evidence["session_id_source"] == "trace"
    assert not decisions(found)  # the gateway cannot match a trace-derived session

    spans = [
        SpanEvent(
            trace_id="t2",
            span_id=f"sp{i}",
            name="tool",
            kind="TOOL",
            start_ts=T0,
            end_ts=T0 + timedelta(seconds=i),
            duration_ms=5.0,
            session_id="agent-7",
            org="acme",
            tool_name="fetch_url",
            tool_arguments_hash="h1",
        )
        for i in range(5)
    ]
    out: list[Publication] = []
    for span in spans:
        out += det.observe_span(span)
    out += det.observe_span(spans[-1])  # redelivered: ignored
    [(key, decision)] = decisions(out)
    assert key == "agent_loop|session:agent-7" and decision.subject == "session:agent-7"
    assert det.ignored_events == 1


def test_every_step_of_a_session_is_routed_by_the_session_the_detector_sees() -> None:
    header, traced = step("agent-1", 0), step(None, 1, trace="trace-9")
    assert session_of(header) == "session:agent-1" and session_of(traced) == "session:trace-9"
    assert session_of(step(None, 2)) is None  # no session: the detector ignores it
    key = routed_key("costs", "session:agent-1")
    assert parse_routed_key(key) == ("costs", "session:agent-1")
    assert parse_routed_key(b"key-1") == parse_routed_key(None) == ("", "")


def test_sessions_given_to_another_worker_are_forgotten() -> None:
    det = detector()
    run(det, honest_session("kept", 3) + honest_session("moved", 3))
    assert det.forget(lambda subject: subject == "session:moved") == 1
    assert list(det.sessions) == ["session:kept"]


def test_policies_throttle_or_block_the_session_not_the_key() -> None:
    det = detector()
    record = AgentLoopPolicyRecord(
        policy_id="p", subject="org:acme", kind=KIND, mode="throttle", params={"rpm": 3}
    )
    det.policies.apply(b"policy:p", record.to_json())
    out = run(det, looping_session("s-t", "repeat"))
    [(key, decision)] = decisions(out)
    assert key == "agent_loop|session:s-t"
    assert decision.action == "throttle" and decision.rpm == 3 and decision.source == "agent_loop"
    assert decision.expires_at == NOW + timedelta(seconds=CONFIG.block_s)
    assert decision.anomaly_id == anomalies(out)[0].anomaly_id
    assert [i.topic for i in out if isinstance(i.value, EnforcementDecision)] == [ENFORCEMENT]

    blocked = run(detector(default="block"), looping_session("s-b", "stuck"))
    [(_, block)] = decisions(blocked)
    assert block.action == "block" and block.rpm is None and block.subject == "session:s-b"

    watched = run(detector(), looping_session("s-m", "repeat"))
    assert anomalies(watched) and not decisions(watched)
    assert not run(detector(default="off"), looping_session("s-o", "repeat"))


def test_refused_and_unreadable_events_are_skipped() -> None:
    det = detector()
    refused = [
        step("s-r", i, tool=("x", "y")).model_copy(update={"error_type": "throttled"})
        for i in range(6)
    ]
    assert not run(det, refused)
    assert parse_event(RequestEvent, b"{oops") is None and parse_event(SpanEvent, None) is None


def test_decisions_found_before_the_policies_loaded_wait_for_them() -> None:
    det = AgentLoopDetector(CONFIG, PolicyBook(KIND, "monitor"), lambda: NOW, policies_ready=False)
    early = run(det, looping_session("s-early", "repeat"))
    assert anomalies(early) and not decisions(early)
    assert anomalies(early)[0].evidence["mode"] == "pending"
    record = AgentLoopPolicyRecord(policy_id="p", subject="org:acme", kind=KIND, mode="block")
    det.policies.apply(b"policy:p", record.to_json())
    [(key, decision)] = decisions(det.policies_loaded())
    assert key == "agent_loop|session:s-early" and decision.action == "block"
    assert not det.policies_loaded()


def tool_span(index: int, name: str, arguments_hash: str | None, kind: str = "TOOL") -> SpanEvent:
    return SpanEvent(
        trace_id="t3",
        span_id=f"sp{index}",
        name=name,
        kind=kind,
        start_ts=T0 + timedelta(seconds=index),
        end_ts=T0 + timedelta(seconds=index + 1),
        duration_ms=5.0,
        session_id="agent-9",
        org="acme",
        tool_name=name if kind == "TOOL" else None,
        tool_arguments_hash=arguments_hash,
        input_tokens=500,
        output_tokens=50,
    )


def test_a_repeat_with_fresh_request_ids_and_clocks_is_still_a_repeat() -> None:
    """The gateway fingerprints arguments without their noise (schemas/tool_arguments)."""
    det = detector(default="block")

    def poll(index: int) -> RequestEvent:
        arguments = {
            "job": 7,
            "request_id": f"{index:08d}-0000-4000-8000-{index:012d}",
            "since": f"2026-03-02T09:00:{index:02d}Z",
        }
        call = ToolCall(name="get_job_status", arguments_hash=tool_arguments_hash(arguments))
        return step("s-noisy", index, prompt="Is it done?").model_copy(
            update={"tool_calls": [call]}
        )

    at, found = first_detection(det, [poll(index) for index in range(6)])
    assert at == 4 and "repeated_tool_call" in found.signals  # the 5th identical call


def test_progress_between_identical_calls_is_not_a_loop() -> None:
    """Edit, test, edit, test: the same test command, a new edit each time."""
    det = detector(default="block")
    tdd = [
        step("s-tdd", index, tool=("run_tests", "{}"))
        if index % 2
        else step("s-tdd", index, tool=("edit_file", f'{{"patch": {index}}}'))
        for index in range(40)
    ]
    assert not anomalies(run(det, tdd))
    stuck = [step("s-tdd", 40 + index, tool=("run_tests", "{}")) for index in range(5)]
    assert "repeated_tool_call" in anomalies(run(det, stuck))[0].signals


def test_tool_spans_without_arguments_are_no_repeats_and_llm_spans_no_second_step() -> None:
    det = detector(default="block")
    blind = [tool_span(i, "read_file", None) for i in range(10)]  # GenAI, content not captured
    assert not [p for span in blind for p in det.observe_span(span)]
    det = detector(max_steps=3)
    run(det, [step("agent-9", i) for i in range(3)])  # three calls through the gateway
    llm = [tool_span(10 + i, "chat", None, kind="LLM") for i in range(3)]  # the same, as spans
    assert not [p for span in llm for p in det.observe_span(span)]
    assert det.sessions["session:agent-9"].steps == 3


def test_limits_alone_are_reported_but_not_enforced() -> None:
    det = detector(default="block", max_steps=20)
    out = run(det, honest_session("s-long", 30))
    assert [a.signals for a in anomalies(out)] == [["step_limit"]] and not decisions(out)
    stuck = [step("s-long", 30 + index, tool=("run_tests", "{}")) for index in range(5)]
    out = run(det, stuck)
    assert decisions(out) and "repeated_tool_call" in anomalies(out)[-1].signals


def test_a_cycle_of_changing_calls_is_caught_five_steps_into_its_second_round() -> None:
    # read a, edit a (one way), read b, edit b, read c, edit c, then the same six again: no
    # call repeats within a round, and no round is exactly the last (2- or 3-cycles).
    files = ("a", "b", "c")
    cycle = [(name, f'{{"path": "{f}"}}') for f in files for name in ("read_file", "edit")]
    steps = honest_session("s-cycle", 3)
    grown = "Make the failing test pass. " * 40
    for index in range(3, 3 + 6 + 5):
        grown += " tool result" * 10
        steps.append(step("s-cycle", index, tool=cycle[(index - 3) % 6], prompt=grown))
    found = anomalies(run(detector(), steps))
    assert [a.signals for a in found] == [["no_new_calls"]]
    assert found[0].evidence["signals"]["no_new_calls"]["calls"] == 5
    assert found[0].evidence["signal_request_ids"]["no_new_calls"] == ["s-cycle-13"]  # 6 + 5
    assert not anomalies(run(detector(), steps[:-1]))  # one step earlier: not yet


def test_edit_test_edit_test_and_revisits_are_progress() -> None:
    # The same test command after every edit, a file read again now and then: each edit is
    # new, so no run of old calls grows.
    steps, grown = [], "Fix the parser. " * 20
    for index in range(60):
        grown += " result" * 10
        if index % 2:
            call = ("run_tests", '{"command": "pytest -q"}')
        elif index % 10 == 4:
            call = ("read_file", '{"path": "src/parser.py"}')
        else:
            call = ("edit", f'{{"path": "src/parser.py", "new": "v{index}"}}')
        steps.append(step("s-progress", index, tool=call, prompt=grown))
    assert not anomalies(run(detector(), steps))


def test_a_long_conversation_trimmed_to_its_context_is_no_near_duplicate() -> None:
    # Past its context budget the agent drops the oldest result for each new one: the
    # prompt keeps its length and its signature, but each tool call's result is news.
    results = [f"result {i}: " + "lines of output " * 30 for i in range(40)]
    steps = []
    for index in range(30):
        kept = " ".join(results[index : index + 10])
        call = ("read_file", f'{{"path": "src/f{index}.py"}}')
        steps.append(step("s-trimmed", index, tool=call, prompt="Refactor. " + kept))
    assert not anomalies(run(detector(), steps))


def test_an_app_llm_span_that_asks_for_a_tool_is_one_step_and_its_run_no_repeat() -> None:
    det = detector()

    def span(i: int, kind: str, name: str, arguments: str) -> SpanEvent:
        return SpanEvent(
            trace_id="t3",
            span_id=f"{kind}{i}",
            name=kind,
            kind=kind,
            start_ts=T0,
            end_ts=T0 + timedelta(seconds=i),
            duration_ms=5.0,
            session_id="agent-8",
            org="acme",
            input_tokens=100,
            output_tokens=10,
            tool_name=name,
            tool_arguments_hash=tool_arguments_hash(arguments),
        )

    out: list[Publication] = []
    for i, path in enumerate(("a", "b", "c", "d", "e", "f")):
        arguments = f'{{"path": "{path}"}}'
        out += det.observe_span(span(i, "LLM", "read_file", arguments))  # the model asks
        out += det.observe_span(span(i, "TOOL", "read_file", arguments))  # the agent runs it
    assert not anomalies(out)
    assert det.sessions["session:agent-8"].steps == 6
