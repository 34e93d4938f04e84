"""`agent-loop`: agent sessions that stop making progress, next to ones that do.

Each session (`x-session-id`) is a tool-using conversation: every step offers tools, the
model answers with a tool call, and the agent appends the call and its result before the
next step. The gateway records the tool calls of each answer (name + argument hash). A
runaway session falls, after a few honest steps, into one of these patterns:

- `repeat`: the same tool call with the same arguments, the conversation growing;
- `stuck`: the very same request again and again (an agent with no memory);
- `oscillate`: A -> B -> A -> B, two calls undoing each other;
- `rephrase`: near-identical prompts ("... attempt 3"), no tools;
- `cycle`: the same three calls in the same order, the conversation growing.

Legitimate long sessions take many distinct steps: a different call or arguments each
time. Steps of a runaway session are malicious from the first repetition on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from meterline.simulate.catalog import host_in, network_in
from meterline.simulate.catalog import prompt as make_prompt
from meterline.simulate.plan import KeySpec, Message, Step

__all__ = [
    "LOOP_PATTERNS",
    "AgentLoopParams",
    "agent_identity",
    "agent_keys",
    "agent_loop_steps",
    "tool_call_message",
]

LOOP_PATTERNS = ("repeat", "stuck", "oscillate", "rephrase", "cycle")
_TOOLS = (
    "search_web", "read_file", "write_file", "run_tests", "list_dir", "query_db",
    "fetch_url", "send_email", "create_ticket", "summarize",
)  # fmt: skip


@dataclass(frozen=True)
class AgentLoopParams:
    start_s: float = 5.0
    patterns: tuple[str, ...] = LOOP_PATTERNS  # one runaway session per pattern
    legit_sessions: int = 2
    legit_steps: int = 24
    warmup_steps: int = 3  # honest steps before a runaway session starts looping
    loop_steps: int = 12  # repeated steps after the warm-up
    step_gap_s: tuple[float, float] = (0.8, 1.6)  # think time between steps
    session_stagger_s: float = 3.0  # sessions start this far apart


def agent_keys() -> list[KeySpec]:
    return [KeySpec("initech-agents-1", "initech", "platform", "coding-agent", "agents@initech")]


def _tool(name: str) -> Message:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


class _Session:
    """One conversation: grows by an assistant tool call and a tool result per step."""

    def __init__(self, rng: random.Random, session_id: str, task: str) -> None:
        self.rng = rng
        self.session_id = session_id
        self.messages: list[Message] = [
            {"role": "system", "content": "You are a coding agent. Use tools to finish."},
            {"role": "user", "content": task},
        ]
        self.calls = 0

    def advance(self, name: str, arguments: str) -> None:
        self.calls += 1
        call_id = f"call_{self.session_id[-6:]}_{self.calls}"
        self.messages.append(tool_call_message(call_id, name, arguments))
        result = make_prompt(self.rng, 10, 40)
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": result})


def agent_loop_steps(
    rng: random.Random, key: str, params: AgentLoopParams, client_ip: str, user_agent: str
) -> Iterator[Step]:
    """Every session's steps, merged in time order by the caller (each is in order)."""
    streams: list[list[Step]] = []
    start = params.start_s
    for index in range(params.legit_sessions):
        streams.append(list(_legit(rng, key, params, start, index, client_ip, user_agent)))
        start += params.session_stagger_s
    for pattern in params.patterns:
        if pattern not in LOOP_PATTERNS:
            raise ValueError(f"unknown loop pattern {pattern!r}; known: {LOOP_PATTERNS}")
        streams.append(list(_runaway(rng, key, params, start, pattern, client_ip, user_agent)))
        start += params.session_stagger_s
    return iter(sorted((s for stream in streams for s in stream), key=lambda s: s.at_s))


def _step(key: str, at_s: float, session: _Session, **fields: object) -> Step:
    return Step(
        at_s=at_s,
        key=key,
        scenario="agent-loop",
        session_id=session.session_id,
        model="gpt-4o-mini",
        max_tokens=256,
        **fields,  # type: ignore[arg-type]
    )


def _legit(
    rng: random.Random,
    key: str,
    params: AgentLoopParams,
    at_s: float,
    index: int,
    client_ip: str,
    user_agent: str,
) -> Iterator[Step]:
    session = _Session(rng, f"agent-legit-{index + 1}", "Refactor the billing module. " * 3)
    seen: set[tuple[str, str]] = set()
    for _ in range(params.legit_steps):
        name = rng.choice(_TOOLS)
        arguments = orjson.dumps({"path": f"src/{make_prompt(rng, 1, 2)}.py"}).decode()
        if (name, arguments) in seen:  # progress means never the same call twice
            arguments = orjson.dumps({"path": f"src/part{len(seen)}.py"}).decode()
        seen.add((name, arguments))
        yield _step(
            key,
            at_s,
            session,
            stage="legit",
            messages=tuple(session.messages),
            tools=(_tool(name), _tool(rng.choice(_TOOLS))),
            tool_arguments=arguments,
            client_ip=client_ip,
            user_agent=user_agent,
        )
        session.advance(name, arguments)
        at_s += rng.uniform(*params.step_gap_s)


def _runaway(
    rng: random.Random,
    key: str,
    params: AgentLoopParams,
    at_s: float,
    pattern: str,
    client_ip: str,
    user_agent: str,
) -> Iterator[Step]:
    session = _Session(rng, f"agent-{pattern}-1", "Make the failing test pass. " * 3)
    for step_index in range(params.warmup_steps):
        name = _TOOLS[step_index % len(_TOOLS)]
        arguments = orjson.dumps({"step": step_index}).decode()
        yield _step(
            key,
            at_s,
            session,
            stage="warmup",
            messages=tuple(session.messages),
            tools=(_tool(name),),
            tool_arguments=arguments,
            client_ip=client_ip,
            user_agent=user_agent,
        )
        session.advance(name, arguments)
        at_s += rng.uniform(*params.step_gap_s)
    calls = [("run_tests", '{"path":"tests/test_billing.py"}')]
    if pattern == "oscillate":
        calls = [("write_file", '{"path":"billing.py","v":"a"}'), ("write_file", '{"v":"b"}')]
    elif pattern == "cycle":
        calls = [("read_file", '{"p":"a.py"}'), ("write_file", '{"p":"a.py"}'), calls[0]]
    frozen = tuple(session.messages)  # what `stuck` resends
    for loop_index in range(params.loop_steps + len(calls)):
        name, arguments = calls[loop_index % len(calls)]
        # The first round of calls is new; every call after it repeats one.
        malicious = loop_index >= len(calls)
        fields: dict[str, object] = {
            "stage": "loop" if malicious else "loop-start",
            "malicious": malicious,
            "detector": "agent_loop" if malicious else None,
            "client_ip": client_ip,
            "user_agent": user_agent,
        }
        if pattern == "rephrase":
            ask = f"The build still fails. Please try again to fix it (attempt {loop_index + 1})."
            yield _step(
                key, at_s, session, messages=(*frozen, {"role": "user", "content": ask}), **fields
            )
        elif pattern == "stuck":
            yield _step(
                key,
                at_s,
                session,
                messages=frozen,
                tools=(_tool(name),),
                tool_arguments=arguments,
                **fields,
            )
        else:
            yield _step(
                key,
                at_s,
                session,
                messages=tuple(session.messages),
                tools=(_tool(name),),
                tool_arguments=arguments,
                **fields,
            )
            session.advance(name, arguments)
        at_s += rng.uniform(*params.step_gap_s)


def agent_identity(rng: random.Random) -> tuple[str, str]:
    """(client address, user agent) of the agents' runner."""
    return host_in(rng, network_in(rng, "us-west")), "initech-coding-agent/0.9 openai-python/1.54.0"


def tool_call_message(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """The assistant turn of a chat conversation that asks for one tool call."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        ],
    }
