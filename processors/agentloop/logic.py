"""Runaway agents: sessions that loop or overspend. Pure: no Kafka, no Faust.

A session is RequestEvent.session_id (the gateway's `x-session-id`), SpanEvent.session_id
(OpenInference `session.id`), or else the trace id. Each billable call is a step. Signals:

- `repeated_tool_call`: the same tool call (name + arguments fingerprint, which ignores
  formatting, request ids and clocks: schemas/tool_arguments.py) `repeat_threshold`
  times within the last `history` steps with no new call in between (edit, test, edit,
  test is progress; test, test, test is not); a tool span without its
  arguments (GenAI spans capture them only on opt-in) is no evidence of a repeat;
- `oscillation`: A->B->A->B->A (or a 3-cycle) of tool calls or prompt hashes;
- `no_new_calls`: `repeat_threshold` tool calls in a row, of at least two kinds, that
  were all made before within the last `history` steps: a cycle of any length up to
  `history` (read A, edit A, read B, edit B, read A, ...), caught `repeat_threshold`
  steps into its second round whatever its arguments do from one call to the next;
- `near_duplicate_prompts`: `repeat_threshold` consecutive prompts that are the same
  (hash) or nearly (signature alike, same length; see patterns.near_duplicate), nearly
  only where the step between them called no tool (a tool's result is news);
- `step_limit` / `cost_limit` (off unless configured: a long session is no runaway one):
  more than `max_steps` calls, or more than `max_session_usd` (CostEvents by session_id)
  or `max_session_tokens`.

Tool calls come from two sources, the calls a model answered with (RequestEvent.tool_calls,
or an app's LLM span that asked for one) and the tool runs an instrumented agent exports
(TOOL spans: SpanEvent tool_name/arguments hash). One executed call usually shows up in
both, so each source keeps its own history and neither double-counts the other. Spans
the gateway emitted itself are skipped: their RequestEvent is the step; so are the app's
own LLM spans once the session has gateway requests (the same call seen twice).

Loop signals are high severity, limits medium, both together critical (signals.combine).
A session is reported once, and again only when it escalates. Policy (PolicyRecord kind
"agent_loop" for the session, key or org; else the default): `monitor` reports,
`throttle` (rpm from the policy's params or the setting) and `block` also publish a
decision on the SESSION subject, never the key, expiring after `block_s`, once a loop
signal is among the anomaly's; limits alone are reported, not enforced: a long session
is not a runaway one (a hard cap on spend is a budget's job). A session
known only by its trace id is reported, but no decision is published: the gateway
matches `session:` subjects to `x-session-id` only.
Until the policies have loaded (`policies_loaded()`), decisions wait.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from meterline.settings import AgentLoopSettings
from processors.agentloop.patterns import cycle_of, near_duplicate
from processors.agentloop.signals import MEDIUM, STRONG, Signal, combine
from processors.errors import parse_event
from processors.llmjacking.policy import PolicyBook, Publication
from processors.spans.logic import is_gateway_span
from schemas.error_types import ENFORCED_ERRORS
from schemas.events.v1 import (
    Anomaly,
    CostEvent,
    EnforcementDecision,
    RequestEvent,
    SpanEvent,
    format_ts,
    utc_now,
)
from schemas.severity import SEVERITIES
from schemas.subjects import key_subject, org_subject, session_subject
from schemas.topics import ANOMALIES, ENFORCEMENT, enforcement_key

__all__ = [
    "KIND",
    "STAGE",
    "AgentLoopDetector",
    "parse_event",
    "session_of",
]

STAGE = "processors.agentloop"
KIND = "agent_loop"
_MAX_SAMPLES = 10
_MAX_SEEN = 512  # recent request/span ids per session, to drop redeliveries
_SWEEP_EVERY = 1000  # events between sweeps of idle sessions
_LLM_KINDS = frozenset({"LLM", "EMBEDDING"})
_MAX_PENDING = 10_000
# What is enforced: a loop. Limits (step_limit, cost_limit) alone are reported only.
_LOOP_SIGNALS = frozenset(
    {"repeated_tool_call", "oscillation", "no_new_calls", "near_duplicate_prompts"}
)


@dataclass
class _History:
    """The last `size` step tokens of one source, with their counts; `repeats` counts each
    token since the last new one (a token not in the window): an agent that makes progress
    between two identical calls (edit, test, edit, test) is not repeating itself."""

    size: int
    tokens: deque[str] = field(default_factory=deque)
    counts: Counter[str] = field(default_factory=Counter)
    repeats: Counter[str] = field(default_factory=Counter)

    def calls_since_new(self) -> int:
        """Tool calls in a row, of at least two kinds, all seen before in the window (0
        when a step since the last new token was no tool call, or one call repeats)."""
        if len(self.repeats) < 2 or not all(t.startswith("tool:") for t in self.repeats):
            return 0
        return sum(self.repeats.values()) - 1  # the first is the last new token

    def push(self, token: str) -> None:
        if token not in self.counts:
            self.repeats.clear()
        self.repeats[token] += 1
        self.tokens.append(token)
        self.counts[token] += 1
        if len(self.tokens) > self.size:
            old = self.tokens.popleft()
            self.counts[old] -= 1
            if not self.counts[old]:
                del self.counts[old]


@dataclass
class _Session:
    subject: str
    id_source: str  # header | span | trace
    key_id: str | None
    org: str
    first_seen: datetime
    last_seen: datetime
    requests: _History
    spans: _History
    steps: int = 0
    gateway_steps: int = 0  # of which RequestEvents: then the app's LLM spans are no steps
    tokens: int = 0
    cost: Decimal = Decimal(0)
    cost_ids: set[str] = field(default_factory=set)
    last_prompt: tuple[str | None, str | None, int] | None = None
    duplicate_run: int = 0
    last_called: bool = False  # the last request was answered with tool calls
    seen: deque[str] = field(default_factory=deque)
    samples: list[str] = field(default_factory=list)
    evidence_ids: dict[str, list[str]] = field(default_factory=dict)
    alerted_rank: int = 0
    reported: set[str] = field(default_factory=set)
    decided: str | None = None  # the action we published for this session

    def remember(self, step_id: str) -> bool:
        if step_id in self.seen:
            return False
        self.seen.append(step_id)
        if len(self.seen) > _MAX_SEEN:
            self.seen.popleft()
        return True

    def sample(self, step_id: str) -> None:
        if len(self.samples) < _MAX_SAMPLES:
            self.samples.append(step_id)


def session_of(event: RequestEvent | SpanEvent | CostEvent) -> str | None:
    """The subject of the session an event belongs to, as the observe_* methods see it
    (None: no session, the detector ignores it)."""
    if isinstance(event, CostEvent):
        session_id = event.session_id
    else:
        session_id = event.session_id or event.trace_id
    return session_subject(session_id) if session_id else None


class AgentLoopDetector:
    """Sessions in process memory (at most `max_sessions`; idle ones forgotten after
    `session_ttl_s` of event time); each `observe_*` returns what to publish."""

    def __init__(
        self,
        config: AgentLoopSettings,
        policies: PolicyBook,
        now: Callable[[], datetime] = utc_now,
        source: str = STAGE,
        policies_ready: bool = True,
    ) -> None:
        self.config = config
        self.policies = policies
        self._policies_ready = policies_ready
        self._pending: list[tuple[_Session, Anomaly]] = []  # decisions awaiting policies
        self._now = now
        self._source = source
        self.sessions: OrderedDict[str, _Session] = OrderedDict()
        self.ignored_events = 0
        self._events = 0

    def forget(self, gone: Callable[[str], bool]) -> int:
        """Drops the sessions (by subject) `gone` says another worker holds now."""
        dropped = [subject for subject in self.sessions if gone(subject)]
        for subject in dropped:
            del self.sessions[subject]
        return len(dropped)

    # the streams

    def observe_request(self, event: RequestEvent) -> list[Publication]:
        if event.error_type in ENFORCED_ERRORS:
            return []  # refused by the gateway: no model was called
        session_id = event.session_id or event.trace_id
        if not session_id:
            return []
        id_source = "header" if event.session_id else "trace"
        session = self._session(session_id, id_source, event.key_id, event.org, event.ts_end)
        if not session.remember(f"request:{event.request_id}"):
            self.ignored_events += 1
            return []
        session.steps += 1
        session.gateway_steps += 1
        session.tokens += event.input_tokens + event.output_tokens
        session.sample(event.request_id)
        prompt = (event.prompt_hash, event.prompt_signature, event.prompt_chars)
        last = session.last_prompt
        if last is None:
            duplicate = False
        elif session.last_called:
            # The conversation holds the tool's result now: a similar prompt of the same
            # length is a long conversation trimmed to its context, not a retry.
            duplicate = prompt[0] is not None and prompt[0] == last[0]
        else:
            duplicate = near_duplicate(last, prompt, self.config.prompt_similarity)
        session.last_called = bool(event.tool_calls)
        if duplicate:
            session.duplicate_run += 1
        else:
            session.duplicate_run = 1
        if event.prompt_hash is not None or event.prompt_signature is not None:
            session.last_prompt = prompt
        if event.tool_calls:
            for call in event.tool_calls:
                session.requests.push(f"tool:{call.name}:{call.arguments_hash}")
        elif event.prompt_hash is not None:
            session.requests.push(f"prompt:{event.prompt_hash}")
        return self._judge(session, event.request_id)

    def observe_span(self, span: SpanEvent) -> list[Publication]:
        if is_gateway_span(span):
            return []  # the gateway's RequestEvent for that call is the step
        is_llm = span.kind in _LLM_KINDS
        if not is_llm and span.tool_name is None:
            return []  # chains, agents, retrievers: structure, not steps
        session_id = span.session_id or span.trace_id
        id_source = "span" if span.session_id else "trace"
        session = self._session(session_id, id_source, span.key_id, span.org, span.end_ts)
        step_id = f"{span.trace_id}:{span.span_id}"
        if not session.remember(f"span:{step_id}"):
            self.ignored_events += 1
            return []
        session.sample(step_id)
        # Without its arguments no call is the same as another: nothing to push.
        token = f"tool:{span.tool_name}:{span.tool_arguments_hash}"
        has_call = span.tool_name is not None and span.tool_arguments_hash is not None
        if not is_llm:
            if has_call:  # a tool run
                session.spans.push(token)
        elif not session.gateway_steps:  # else the gateway's RequestEvent was the step
            session.steps += 1
            session.tokens += span.input_tokens + span.output_tokens
            if has_call:  # what the model asked for, like a RequestEvent's tool_calls
                session.requests.push(token)
        return self._judge(session, step_id)

    def observe_cost(self, cost: CostEvent) -> list[Publication]:
        if not cost.session_id or not cost.total_cost:
            return []
        session = self._session(cost.session_id, "header", cost.key_id, cost.org, cost.request_ts)
        if cost.event_id in session.cost_ids:
            return []
        session.cost_ids.add(cost.event_id)
        session.cost += cost.total_cost
        return self._judge(session, cost.request_id)

    def policies_loaded(self) -> list[Publication]:
        """The policies are known now: the decisions held back meanwhile, where wanted."""
        self._policies_ready = True
        out: list[Publication] = []
        for session, anomaly in self._pending:
            mode, params = self._mode(session)
            out += self._enforce(session, anomaly, mode, params)
        self._pending.clear()
        return out

    # internals

    def _mode(self, session: _Session) -> tuple[str, dict[str, Any]]:
        return self.policies.mode(
            [session.subject, key_subject(session.key_id or ""), org_subject(session.org)]
        )

    def _session(
        self, session_id: str, id_source: str, key_id: str | None, org: str, at: datetime
    ) -> _Session:
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        subject = session_subject(session_id)
        self._events += 1
        if self._events % _SWEEP_EVERY == 0:
            self._sweep(at)
        session = self.sessions.get(subject)
        if session is None:
            if len(self.sessions) >= self.config.max_sessions:
                self.sessions.popitem(last=False)
            size = self.config.history
            session = _Session(
                subject, id_source, key_id, org, at, at, _History(size), _History(size)
            )
            self.sessions[subject] = session
        else:
            self.sessions.move_to_end(subject)
            session.last_seen = max(session.last_seen, at)
            session.key_id = session.key_id or key_id
            session.org = session.org or org
            if id_source != "trace":
                session.id_source = id_source
        return session

    def _sweep(self, at: datetime) -> None:
        horizon = at - timedelta(seconds=self.config.session_ttl_s)
        for subject in [s for s, session in self.sessions.items() if session.last_seen < horizon]:
            del self.sessions[subject]

    def _signals(self, session: _Session) -> list[Signal]:
        config = self.config
        signals: list[Signal] = []
        repeats = [
            (token, count)
            for history in (session.requests, session.spans)
            for token, count in history.repeats.items()
            if token.startswith("tool:") and count >= config.repeat_threshold
        ]
        if repeats:
            token, count = max(repeats, key=lambda item: item[1])
            _, name, arguments_hash = token.split(":", 2)
            evidence = {"tool": name, "arguments_hash": arguments_hash, "count": count}
            signals.append(
                Signal("repeated_tool_call", STRONG, evidence | {"history": config.history})
            )
        for source, history in (("requests", session.requests), ("spans", session.spans)):
            cycle = cycle_of(list(history.tokens), config.repeat_threshold)
            if cycle is not None:
                signals.append(
                    Signal("oscillation", STRONG, {"cycle": list(cycle), "source": source})
                )
                break
        for source, history in (("requests", session.requests), ("spans", session.spans)):
            stalled = history.calls_since_new()
            if stalled >= config.repeat_threshold:
                calls = sorted({token.split(":", 2)[1] for token in history.repeats})
                evidence = {"calls": stalled, "tools": calls, "source": source}
                signals.append(Signal("no_new_calls", STRONG, evidence))
                break
        if session.duplicate_run >= config.repeat_threshold:
            last = session.last_prompt
            evidence = {"consecutive": session.duplicate_run, "prompt_chars": last and last[2]}
            signals.append(Signal("near_duplicate_prompts", STRONG, evidence))
        if config.max_steps is not None and session.steps > config.max_steps:
            signals.append(
                Signal("step_limit", MEDIUM, {"steps": session.steps, "limit": config.max_steps})
            )
        max_usd, max_tokens = config.max_session_usd, config.max_session_tokens
        over_cost = max_usd is not None and session.cost > max_usd
        if over_cost or (max_tokens is not None and session.tokens > max_tokens):
            evidence = {
                "cost_usd": format(session.cost, "f"),
                "limit_usd": None if max_usd is None else format(max_usd, "f"),
                "tokens": session.tokens,
                "limit_tokens": config.max_session_tokens,
            }
            signals.append(Signal("cost_limit", MEDIUM, evidence))
        return signals

    def _judge(self, session: _Session, step_id: str) -> list[Publication]:
        signals = self._signals(session)
        for signal in signals:
            ids = session.evidence_ids.setdefault(signal.name, [])
            if len(ids) < _MAX_SAMPLES and step_id not in ids:
                ids.append(step_id)
        score, rank = combine(signals)
        fresh = {signal.name for signal in signals} - session.reported
        if rank < 1 or (rank <= session.alerted_rank and not fresh):
            return []
        session.alerted_rank = max(rank, session.alerted_rank)
        session.reported |= {signal.name for signal in signals}
        mode, params = self._mode(session) if self._policies_ready else ("pending", {})
        if mode == "off":
            return []
        anomaly = self._anomaly(session, signals, score, rank, mode)
        out = [Publication(ANOMALIES, anomaly.subject, anomaly)]
        if mode == "pending" and len(self._pending) < _MAX_PENDING:
            self._pending.append((session, anomaly))
        return out + self._enforce(session, anomaly, mode, params)

    def _enforce(
        self, session: _Session, anomaly: Anomaly, mode: str, params: dict[str, Any]
    ) -> list[Publication]:
        if mode not in ("throttle", "block") or session.id_source == "trace":
            return []
        if not _LOOP_SIGNALS & set(anomaly.signals):
            return []  # limits alone: a long session is not a runaway one
        decision = self._decision(session, anomaly, mode, params)
        if decision is None:
            return []
        return [Publication(ENFORCEMENT, enforcement_key(KIND, session.subject), decision)]

    def _decision(
        self, session: _Session, anomaly: Anomaly, mode: str, params: dict[str, Any]
    ) -> EnforcementDecision | None:
        if session.decided == mode:
            return None  # published already; it holds until it expires
        session.decided = mode
        now = self._now()
        rpm = _int(params.get("rpm"), self.config.throttle_rpm) if mode == "throttle" else None
        return EnforcementDecision(
            ts=now,
            source=KIND,
            subject=session.subject,
            action="throttle" if mode == "throttle" else "block",
            rpm=rpm,
            reason=f"agent loop ({anomaly.severity}): {', '.join(anomaly.signals)}",
            expires_at=now + timedelta(seconds=self.config.block_s),
            decided_at=now,
            anomaly_id=anomaly.anomaly_id,
        )

    def _anomaly(
        self, session: _Session, signals: list[Signal], score: float, rank: int, mode: str
    ) -> Anomaly:
        evidence: dict[str, Any] = {
            "session_id_source": session.id_source,
            "key_id": session.key_id,
            "org": session.org,
            "mode": mode,
            "steps": session.steps,
            "tokens": session.tokens,
            "cost_usd": format(session.cost, "f"),
            "first_seen": format_ts(session.first_seen),
            "last_seen": format_ts(session.last_seen),
            "sample_request_ids": session.samples,
            "signal_request_ids": {s.name: session.evidence_ids.get(s.name, []) for s in signals},
            "signals": {signal.name: signal.evidence for signal in signals},
        }
        return Anomaly(
            ts=self._now(),
            kind=KIND,
            subject=session.subject,
            score=score,
            severity=SEVERITIES[rank],
            signals=sorted(signal.name for signal in signals),
            evidence=evidence,
            recommended_action="throttle" if mode == "throttle" else "block",
            source=self._source,
        )


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and value > 0 else default
