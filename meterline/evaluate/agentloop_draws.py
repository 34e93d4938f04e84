"""Many agent sessions, in process: the agent-loop detector's pure logic against drawn
runaway loops and long legitimate sessions.

Each draw runs one runaway session (its kind cycles with the draw index over LOOP_KINDS;
everything else is drawn, see agent_sessions.py) beside `legit_sessions` legitimate ones
(their kinds cycle too), started 0-120 s apart, through one `AgentLoopDetector` with
every session on policy `block` (what `enforce` means for agent loops). Each session is
seen through its drawn channel, as the stack sees it:

- gateway: per model call, when it ends, the RequestEvent the gateway emits: session_id
  from `x-session-id`; prompt_hash, prompt_chars and prompt_signature from the gateway's
  own functions; tool_calls hashed as the gateway hashes the answer's arguments; then
  its CostEvent (the cost agent's Pricer);
- spans: the agent calls its provider directly and exports OTLP spans, turned into
  SpanEvents by ingest's own `normalize_span`: an LLM span per call and a TOOL span per
  tool run, instrumented the OpenInference way (`tool.name`, `tool.parameters` the tool's
  declared schema, `input.value` its arguments; LLM spans carry the answer's tool call
  when content is captured) or the GenAI way (`execute_tool` spans with
  `gen_ai.tool.call.arguments` only when content is captured), `session.id` /
  `gen_ai.conversation.id` on each; a batch exporter sends them every 5 s; LLM spans are
  priced by the span cost agent's `cost_for_span`;
- both: the gateway's events and the agent's spans (its LLM spans, parents of the
  gateway's spans, are not priced again).

A session is flagged when an Anomaly first names it; `flagged_step` is the number of
model calls the agent had started by then. A runaway session is caught by the first
anomaly at or after its loop began; `repeats` counts its loop steps after the loop's
first round (1 step for a repeat or a rephrase, 2 for a ping-pong): the target is at
most 5. A legitimate session flagged at all is a false positive.

Detector settings are the production defaults, fixed before any draw; the draws of seed
`s` are `random.Random(f"{s}:{i}")`, so a seed is reproducible and no seed is special.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateway.apis.chat import ChatDialect
from gateway.apis.prompt import prompt_stats, prompt_texts
from gateway.signature import request_signature
from ingest.otlp.normalize import normalize_span
from ingest.otlp.spans import RawSpan
from meterline.evaluate.agent_sessions import (
    LEGIT_KINDS,
    LOOP_KINDS,
    TOOLS,
    AgentSession,
    Turn,
    draw_legit_session,
    draw_loop_session,
)
from meterline.evaluate.draws import T0
from meterline.settings import AgentLoopSettings
from processors.agentloop.logic import KIND, AgentLoopDetector
from processors.cost.logic import Pricer
from processors.llmjacking.policy import PolicyBook, Publication
from processors.spans.logic import cost_for_span
from schemas.events.v1 import Anomaly, EnforcementDecision, RequestEvent, SpanEvent, ToolCall
from schemas.subjects import session_subject
from schemas.tool_arguments import tool_arguments_hash

__all__ = [
    "AgentDrawConfig",
    "AgentLoopDraw",
    "SessionResult",
    "agentloop_draw",
    "run_sessions",
    "session_request",
    "session_spans",
]

_KEY, _ORG, _TEAM, _APP = "initech-agents-1", "initech", "platform", "coding-agent"
_CHAT = ChatDialect()
_EXPORT_EVERY_S = 5.0  # the OTel batch span processor's schedule delay
_TOOL_SCHEMA_TOKENS = 60  # per tool offered


@dataclass(frozen=True)
class AgentDrawConfig:
    legit_sessions: int = 3
    loop_steps: int = 150  # a runaway agent keeps going until something stops it
    detector: AgentLoopSettings = field(default_factory=AgentLoopSettings)


@dataclass
class SessionResult:
    kind: str
    variant: str
    loop: bool
    channel: str
    instrumentation: str
    capture_content: bool
    steps: int  # model calls the session makes
    loop_start: int | None
    period: int
    params: dict[str, Any]
    flagged_step: int | None = None
    signals: list[str] = field(default_factory=list)
    early_signals: list[str] = field(default_factory=list)  # a runaway flagged before its loop
    blocked: bool = False

    @property
    def flagged(self) -> bool:
        return self.flagged_step is not None

    @property
    def repeats(self) -> int | None:
        """Loop steps after the loop's first round when caught (runaways only)."""
        if self.flagged_step is None or self.loop_start is None:
            return None
        return max(0, self.flagged_step - self.loop_start + 1 - self.period)

    @property
    def via(self) -> str:
        """How its events reach the detector: the channel and, for spans, the convention."""
        if self.channel == "gateway":
            return "gateway"
        capture = "content" if self.capture_content else "no content"
        return f"{self.channel} ({self.instrumentation}, {capture})"


@dataclass
class AgentLoopDraw:
    seed: int
    index: int
    loop: SessionResult
    legit: list[SessionResult]


def session_request(
    session: AgentSession, turn: Turn, start: datetime, number: int
) -> RequestEvent:
    """The RequestEvent the gateway emits for `turn` (a chat completion with tools)."""
    body = {"messages": list(turn.messages)}
    texts = prompt_texts(_CHAT, body)
    prompt_hash, prompt_chars = prompt_stats(_CHAT, body, texts)
    arguments = sum(
        len(call["function"]["arguments"])
        for message in turn.messages
        for call in message.get("tool_calls", ())
    )
    tokens = (prompt_chars + arguments) // 4 + _TOOL_SCHEMA_TOKENS * len(turn.tools)
    tool_calls, output, finish = [], turn.answer_chars // 4 + 1, "stop"
    if turn.call is not None:
        name, text, _ = turn.call
        tool_calls = [ToolCall(name=name, arguments_hash=tool_arguments_hash(text))]
        output, finish = len(text) // 3 + 15, "tool_calls"
    return RequestEvent(
        request_id=f"{session.session_id}-{number}",
        ts_start=start,
        ts_end=start + timedelta(seconds=turn.latency_s),
        latency_ms=turn.latency_s * 1000,
        key_id=_KEY,
        org=_ORG,
        team=_TEAM,
        project=_APP,
        session_id=session.session_id,
        app=_APP,
        provider=_provider(session.model),
        model_requested=session.model,
        model_used=session.model,
        endpoint=_CHAT.endpoint,
        status_code=200,
        input_tokens=tokens + 4 * len(turn.messages),
        output_tokens=output,
        prompt_hash=prompt_hash,
        prompt_chars=prompt_chars,
        response_chars=turn.answer_chars,
        prompt_signature=request_signature(texts),
        tool_calls=tool_calls,
        finish_reason=finish,
    )


def session_spans(
    session: AgentSession, turn: Turn, start: datetime, trace_id: str, rng: random.Random
) -> list[SpanEvent]:
    """The SpanEvents ingest makes of the spans the agent exports for `turn`: its LLM call
    and, for a tool call, the tool's run."""
    sid, openinference = session.session_id, session.instrumentation == "openinference"
    provider = _provider(session.model)
    llm_end = start + timedelta(seconds=turn.latency_s)
    output = len(turn.call[1]) // 3 + 15 if turn.call else turn.answer_chars // 4 + 1
    tokens = sum(len(str(m.get("content") or "")) for m in turn.messages) // 4
    tokens += _TOOL_SCHEMA_TOKENS * len(turn.tools)
    if openinference:
        llm: dict[str, Any] = {
            "openinference.span.kind": "LLM",
            "session.id": sid,
            "llm.model_name": session.model,
            "llm.provider": provider,
            "llm.token_count.prompt": tokens,
            "llm.token_count.completion": output,
            "llm.token_count.total": tokens + output,
        }
    else:
        llm = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": session.model,
            "gen_ai.conversation.id": sid,
            "gen_ai.usage.input_tokens": tokens,
            "gen_ai.usage.output_tokens": output,
            "gen_ai.response.finish_reasons": ["tool_calls" if turn.call else "stop"],
        }
    if session.capture_content:
        llm |= _llm_output(turn, openinference)
    spans = [_span(trace_id, rng, f"chat {session.model}", start, llm_end, llm)]
    if turn.call is not None:
        name, arguments, call_id = turn.call
        tool_end = llm_end + timedelta(seconds=turn.tool_s)
        if openinference:
            tool: dict[str, Any] = {
                "openinference.span.kind": "TOOL",
                "session.id": sid,
                "tool.name": name,
                "tool.description": f"The {name} tool.",
                "tool.parameters": json.dumps({k: {"type": t} for k, t in TOOLS[name].items()}),
            }
            if session.capture_content:
                tool |= {"input.value": arguments, "input.mime_type": "application/json"}
        else:
            tool = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.id": call_id,
                "gen_ai.tool.type": "function",
                "gen_ai.conversation.id": sid,
            }
            if session.capture_content:
                tool |= {"gen_ai.tool.call.arguments": arguments}
        spans.append(_span(trace_id, rng, f"execute_tool {name}", llm_end, tool_end, tool))
    return spans


def _llm_output(turn: Turn, openinference: bool) -> dict[str, Any]:
    if not openinference:  # kept as content: only its length survives ingest
        parts = [{"type": "tool_call", "name": turn.call[0]}] if turn.call else []
        return {"gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": parts}])}
    prefix = "llm.output_messages.0.message"
    if turn.call is None:
        return {f"{prefix}.role": "assistant", f"{prefix}.content": "x" * turn.answer_chars}
    name, arguments, call_id = turn.call
    call = f"{prefix}.tool_calls.0.tool_call"
    return {
        f"{prefix}.role": "assistant",
        f"{call}.id": call_id,
        f"{call}.function.name": name,
        f"{call}.function.arguments": arguments,
    }


def _span(
    trace_id: str,
    rng: random.Random,
    name: str,
    start: datetime,
    end: datetime,
    attributes: dict[str, Any],
) -> SpanEvent:
    raw = RawSpan(
        trace_id=trace_id,
        span_id=f"{rng.getrandbits(64) | 1:016x}",
        parent_span_id=None,
        name=name,
        kind=3,  # client
        start_ns=_ns(start),
        end_ns=_ns(end),
        status_code=1,
        status_message="",
        attributes=attributes,
        resource={"service.name": _APP, "meterline.org": _ORG, "meterline.key_id": _KEY},
    )
    return normalize_span(raw)


def _ns(at: datetime) -> int:
    return round((at - T0).total_seconds() * 1000) * 1_000_000 + _T0_NS


_T0_NS = int(T0.timestamp()) * 1_000_000_000


def _provider(model: str) -> str:
    return "anthropic" if model.startswith("claude") else "openai"


def _result(session: AgentSession) -> SessionResult:
    return SessionResult(
        session.kind,
        session.variant,
        session.loop,
        session.channel,
        session.instrumentation,
        session.capture_content,
        len(session.turns),
        session.loop_start,
        session.period,
        session.params,
    )


def _arrivals(
    sessions: list[AgentSession], offsets: list[float], rng: random.Random
) -> list[tuple[float, int, int, int, str]]:
    """(arrival s, order, session, turn, part) of every event, parts `request` and `spans`."""
    out = []
    for s, (session, offset) in enumerate(zip(sessions, offsets, strict=True)):
        phase = rng.uniform(0, _EXPORT_EVERY_S)  # when this agent's exporter ticks
        for t, turn in enumerate(session.turns):
            start = offset + turn.at_s
            if session.channel != "spans":
                out.append((start + turn.latency_s, len(out), s, t, "request"))
            if session.channel != "gateway":
                # Spans go with the exporter's next batch after the later one (tool) ends.
                ended = start + turn.latency_s + (turn.tool_s if turn.call else 0.0)
                ticks = math.ceil((ended - phase) / _EXPORT_EVERY_S)
                out.append((phase + ticks * _EXPORT_EVERY_S + 0.05, len(out), s, t, "spans"))
    return sorted(out)


def agentloop_draw(seed: int, index: int, config: AgentDrawConfig) -> AgentLoopDraw:
    rng = random.Random(f"{seed}:{index}")
    kind = LOOP_KINDS[index % len(LOOP_KINDS)]
    sessions = [draw_loop_session(rng, kind, _session_id(rng), config.loop_steps)]
    for j in range(config.legit_sessions):
        legit = LEGIT_KINDS[(index * config.legit_sessions + j) % len(LEGIT_KINDS)]
        sessions.append(draw_legit_session(rng, legit, _session_id(rng)))
    offsets = [rng.uniform(0.0, 120.0) for _ in sessions]
    events = random.Random(f"{seed}:{index}:events")
    results = run_sessions(sessions, offsets, config.detector, events)
    return AgentLoopDraw(seed, index, results[0], results[1:])


def run_sessions(
    sessions: list[AgentSession],
    offsets: list[float],
    settings: AgentLoopSettings,
    rng: random.Random,
) -> list[SessionResult]:
    """Sessions started `offsets` seconds after T0, through one detector (policy block),
    every event in the order it reaches the detector; a session's events stop counting
    once it is settled (a runaway caught, a legitimate session flagged)."""
    starts = [
        [offset + turn.at_s for turn in s.turns]
        for s, offset in zip(sessions, offsets, strict=True)
    ]
    results = [_result(session) for session in sessions]
    by_subject = {session_subject(s.session_id): i for i, s in enumerate(sessions)}
    trace_ids = [f"{rng.getrandbits(128) | 1:032x}" for _ in sessions]
    clock = [T0]
    detector = AgentLoopDetector(settings, PolicyBook(KIND, "block"), now=lambda: clock[0])
    pricer = Pricer()
    done: set[int] = set()
    for arrival, number, s, t, part in _arrivals(sessions, offsets, rng):
        if s in done:
            continue
        session, turn = sessions[s], sessions[s].turns[t]
        clock[0] = T0 + timedelta(seconds=arrival)
        start = T0 + timedelta(seconds=offsets[s] + turn.at_s)
        publications: list[Publication] = []
        if part == "request":
            request = session_request(session, turn, start, number)
            publications += detector.observe_request(request)
            publications += detector.observe_cost(pricer.price(request))
        else:
            for span in session_spans(session, turn, start, trace_ids[s], rng):
                publications += detector.observe_span(span)
                cost = cost_for_span(span, pricer) if session.channel == "spans" else None
                if cost is not None:
                    publications += detector.observe_cost(cost)
        for publication in publications:
            value, i = publication.value, by_subject.get(publication.value.subject)
            if i is None:
                continue
            if isinstance(value, EnforcementDecision):
                results[i].blocked = True
            elif isinstance(value, Anomaly) and i not in done:
                step = bisect.bisect_right(starts[i], arrival - 1e-9)  # calls started by now
                if _note(results[i], step, value.signals):
                    done.add(i)
    return results


def _note(result: SessionResult, step: int, signals: list[str]) -> bool:
    """Record an anomaly on `result`; True once the session is settled (caught, flagged)."""
    if result.loop_start is not None and step < result.loop_start:
        result.early_signals = result.early_signals or list(signals)
        return False
    result.flagged_step, result.signals = step, list(signals)
    return True


def _session_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"
