"""Agent sessions drawn from wide ranges, for `meterline eval detections`. Pure.

A session is a tool-using chat conversation (OpenAI chat format). Each `Turn` is one model
call (the conversation so far) and what the model answered: a tool call, its arguments the
JSON text the model wrote, or text. The agent runs the tool, appends the call and its
result and calls the model again; past its context budget it drops the oldest results.
Every trait is drawn per session: model, speed, tool run times, result sizes, context
budget, how the model spaces its JSON.

Runaway sessions (`LOOP_KINDS`) take 0-25 honest steps, then loop:

- `exact_repeat`: one call with the same arguments; the conversation grows by each result
  (`growing`) or the agent resends the very same request (`stuck`);
- `noisy_repeat`: one call whose arguments carry something new each time, as agents
  send it: a fresh request id, the current time, the paging cursor the tool handed back
  (an opaque token), or the same JSON written with other spacing or key order;
- `rephrase`: no tools, the same ask again: with an attempt counter or a timestamp in it
  (`counter`), reworded by the agent (`reworded`), or appended to a conversation that
  grows by each failed answer (`appended`);
- `ping_pong`: two tools in turn, each one's arguments cycling through 1-3 variants,
  either one with a fresh request id each time (`changing`), or the same two calls
  (`fixed`, when it draws 1 variant and no request ids).

Legitimate sessions (`LEGIT_KINDS`, 20-200 steps) make progress: `varied` (many tools,
new arguments), `paging` (documents read page after page), `research` (searches, the pages
found, notes, the user's follow-ups), `coding` (reading and editing many files, the tests
run every few edits: the whole suite, the same command each time, or the edited file's
test, again after a failure). Each one re-reads or re-runs something now and then.
"""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from meterline.evaluate.draws import T0
from meterline.simulate.catalog import CHEAP_MODELS
from meterline.simulate.catalog import prompt as make_prompt
from meterline.simulate.scenarios.agent_loop import tool_call_message

__all__ = [
    "CHANNELS",
    "LEGIT_KINDS",
    "LOOP_KINDS",
    "TOOLS",
    "AgentSession",
    "Turn",
    "draw_legit_session",
    "draw_loop_session",
]

LOOP_KINDS = ("exact_repeat", "noisy_repeat", "rephrase", "ping_pong")
LEGIT_KINDS = ("varied", "paging", "research", "coding")
CHANNELS = ("gateway", "spans", "both")
_MODELS = (*CHEAP_MODELS, "gpt-4o", "claude-3-5-haiku-latest")
# name -> declared parameters (name -> JSON type): the tool's schema, as offered to the model.
TOOLS: dict[str, dict[str, str]] = {
    "read_file": {"path": "string", "offset": "integer", "limit": "integer"},
    "edit_file": {"path": "string", "old_string": "string", "new_string": "string"},
    "write_file": {"path": "string", "content": "string"},
    "run_tests": {"command": "string"},
    "run_command": {"command": "string"},
    "grep": {"pattern": "string", "path": "string"},
    "list_dir": {"path": "string"},
    "search_web": {"query": "string"},
    "fetch_url": {"url": "string"},
    "list_issues": {"repo": "string", "state": "string", "page": "integer", "cursor": "string"},
    "query_db": {"sql": "string"},
    "get_job_status": {"job_id": "string", "since": "string"},
    "send_message": {"channel": "string", "text": "string"},
}
# Seconds a tool takes (log-uniform range).
_TOOL_SECONDS = {"run_tests": (2.0, 90.0), "fetch_url": (0.3, 5.0), "search_web": (0.5, 3.0)}
_NAMES = (
    "billing", "invoice", "client", "parser", "router", "cache", "auth", "session", "report",
    "export", "schema", "worker", "queue", "metrics", "config", "models", "views", "utils",
    "payments", "ledger", "search", "index", "upload", "notify", "audit", "tenant", "quota",
)  # fmt: skip
_DOMAINS = ("docs.python.org", "github.com", "stackoverflow.com", "arxiv.org", "example.org")
_STYLES = ("compact", "spaced", "reversed")
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_SUITES = ("pytest -q", "pytest -x -q", "npm test", "go test ./...", "cargo test", "make test")


@dataclass(frozen=True)
class Turn:
    """One model call of a session and what the model answered."""

    at_s: float  # the call starts (seconds after T0)
    latency_s: float
    messages: tuple[dict[str, Any], ...]  # the request's conversation
    tools: tuple[str, ...]  # names of the tools offered
    call: tuple[str, str, str] | None  # (tool, arguments JSON text, call id) answered
    answer_chars: int  # a text answer's length (0 for a tool call)
    tool_s: float  # the tool's run, after the answer
    loop_step: int = 0  # 0: honest; n: the n-th step of the loop


@dataclass(frozen=True)
class AgentSession:
    session_id: str
    kind: str
    variant: str
    loop: bool
    channel: str  # gateway | spans | both
    instrumentation: str  # openinference | genai: what exports the spans
    capture_content: bool  # spans carry messages and tool arguments
    model: str
    turns: tuple[Turn, ...]
    period: int = 0  # steps of the loop's first round (not repeats)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def loop_start(self) -> int | None:
        """1-based index of the loop's first turn."""
        return next((i + 1 for i, t in enumerate(self.turns) if t.loop_step), None)


class _Agent:
    """One conversation with the agent's drawn traits; each step appends a Turn."""

    def __init__(self, rng: random.Random, session_id: str, tools: list[str]) -> None:
        self.rng = rng
        self.session_id = session_id
        self.tools = tools
        self.model = rng.choice(_MODELS)
        self.style = rng.choice(_STYLES)
        self.ttft_s = _log_uniform(rng, 0.3, 2.5)
        self.ms_per_token = _log_uniform(rng, 6.0, 40.0)
        self.result_words = (rng.randint(10, 60), rng.randint(80, 700))
        self.context_chars = int(_log_uniform(rng, 40_000, 400_000))
        system = make_prompt(rng, 30, 500)
        task = make_prompt(rng, 8, 300)
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": task},
        ]
        self.chars = len(system) + len(task)
        self.at = 0.0
        self.turns: list[Turn] = []

    def json(self, value: dict[str, Any], style: str | None = None) -> str:
        return _json(value, style or self.style)

    def result(self) -> str:
        return make_prompt(self.rng, *self.result_words)

    def call(
        self, name: str, arguments: str, loop_step: int = 0, keep: bool = True, result: str = ""
    ) -> None:
        """The model answers with a tool call; the agent runs it and (`keep`) appends both."""
        call_id = "call_" + "".join(self.rng.choices(_ID_CHARS, k=24))
        output = len(arguments) / 3 + 15
        low, high = _TOOL_SECONDS.get(name, (0.02, 1.5))
        tool_s = _log_uniform(self.rng, low, high)
        self._turn((name, arguments, call_id), 0, output, tool_s, loop_step)
        if keep:
            self._append(tool_call_message(call_id, name, arguments), len(arguments))
            text = result or self.result()
            self._append({"role": "tool", "tool_call_id": call_id, "content": text}, len(text))

    def answer(self, chars: int, loop_step: int = 0, keep: bool = True) -> None:
        """The model answers with text (a note, a reply); `keep` appends it."""
        self._turn(None, chars, chars / 4, 0.0, loop_step)
        if keep:
            text = make_prompt(self.rng, max(1, chars // 8), max(1, chars // 6))
            self._append({"role": "assistant", "content": text}, len(text))

    def user(self, text: str, wait_s: float = 0.0) -> None:
        self._append({"role": "user", "content": text}, len(text))
        self.at += wait_s

    def pending(self, text: str) -> None:
        """A user message sent with the next call only (a retry that replaces the last)."""
        self.messages.append({"role": "user", "content": text})

    def drop_pending(self) -> None:
        self.messages.pop()

    def _turn(
        self,
        call: tuple[str, str, str] | None,
        chars: int,
        output_tokens: float,
        tool_s: float,
        loop_step: int,
    ) -> None:
        ttft = self.ttft_s * math.exp(self.rng.gauss(0, 0.35))
        latency = ttft + output_tokens * self.ms_per_token / 1000
        tools = tuple(self.tools)
        self.turns.append(
            Turn(self.at, latency, tuple(self.messages), tools, call, chars, tool_s, loop_step)
        )
        self.at += latency + tool_s + self.rng.uniform(0.05, 0.6)

    def _append(self, message: dict[str, Any], chars: int) -> None:
        self.messages.append(message)
        self.chars += chars
        # Past the context budget the oldest exchanges go (system prompt and task stay).
        while self.chars > self.context_chars and len(self.messages) > 4:
            old = self.messages.pop(2)
            self.chars -= len(old.get("content") or "") + sum(
                len(c["function"]["arguments"]) for c in old.get("tool_calls", ())
            )


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _json(value: dict[str, Any], style: str) -> str:
    if style == "compact":
        return orjson.dumps(value).decode()
    if style == "reversed":
        return json.dumps(dict(reversed(value.items())), separators=(",", ":"))
    return json.dumps(value)


def _path(rng: random.Random) -> str:
    return f"src/{rng.choice(_NAMES)}/{rng.choice(_NAMES)}_{rng.randint(1, 99)}.py"


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def _arguments(rng: random.Random, name: str) -> dict[str, Any]:
    """New arguments for `name`, as a model working on something writes them."""
    words = " ".join(rng.choices(_NAMES, k=rng.randint(2, 6)))
    if name == "read_file":
        return {"path": _path(rng)}
    if name == "edit_file":
        old, new = make_prompt(rng, 2, 30), make_prompt(rng, 2, 40)
        return {"path": _path(rng), "old_string": old, "new_string": new}
    if name == "write_file":
        return {"path": _path(rng), "content": make_prompt(rng, 20, 300)}
    if name == "run_tests":
        return {"command": f"pytest -q tests/test_{rng.choice(_NAMES)}_{rng.randint(1, 99)}.py"}
    if name == "run_command":
        return {"command": f"git log -n {rng.randint(2, 20)} -- {_path(rng)}"}
    if name == "grep":
        return {"pattern": words, "path": f"src/{rng.choice(_NAMES)}"}
    if name == "list_dir":
        return {"path": f"src/{rng.choice(_NAMES)}/{rng.choice(_NAMES)}"}
    if name == "search_web":
        return {"query": words}
    if name == "fetch_url":
        slug = "-".join(rng.choices(_NAMES, k=3))
        return {"url": f"https://{rng.choice(_DOMAINS)}/{slug}-{rng.randint(1, 9999)}"}
    if name == "list_issues":
        return {"repo": f"acme/{rng.choice(_NAMES)}", "state": "open", "page": 1}
    if name == "query_db":
        column, table = rng.choice(_NAMES), rng.choice(_NAMES)
        return {"sql": f"SELECT * FROM {table} WHERE {column}_id = {rng.randint(1, 10**6)}"}
    if name == "get_job_status":
        return {"job_id": f"job-{rng.getrandbits(40):010x}"}
    return {"channel": f"#{rng.choice(_NAMES)}", "text": make_prompt(rng, 5, 40)}


def _toolset(rng: random.Random) -> list[str]:
    return rng.sample(sorted(TOOLS), rng.randint(5, len(TOOLS)))


def _honest(agent: _Agent, steps: int) -> None:
    """Varied work: a new call most of the time, a note now and then."""
    rng = agent.rng
    for _ in range(steps):
        if rng.random() < 0.1:
            agent.answer(rng.randint(80, 1500))
        else:
            name = rng.choice(agent.tools)
            agent.call(name, agent.json(_arguments(rng, name)))


# --- runaway sessions ---------------------------------------------------------------------


def _exact_repeat(agent: _Agent, steps: int) -> tuple[str, int, dict[str, Any]]:
    rng = agent.rng
    variant = rng.choice(("growing", "stuck"))
    name = rng.choice(agent.tools)
    arguments = agent.json(_arguments(rng, name))
    result = agent.result() if rng.random() < 0.5 else ""  # "": a new result every time
    for step in range(1, steps + 1):
        agent.call(name, arguments, step, keep=variant == "growing", result=result)
    return variant, 1, {"tool": name}


def _noise(agent: _Agent, kind: str, step: int) -> dict[str, Any]:
    rng, now = agent.rng, T0 + timedelta(seconds=agent.at)
    if kind == "request_id":
        return {"request_id": _uuid(rng)}
    if kind == "timestamp":
        if rng.random() < 0.5:
            return {"since": now.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        return {"timestamp": int(now.timestamp() * 1000)}
    # The tool hands back a new cursor for the same first page each time (a snapshot time).
    token = orjson.dumps({"offset": 0, "snapshot": int(now.timestamp() * 1000), "n": step})
    return {"cursor": base64.urlsafe_b64encode(token).decode().rstrip("=")}


def _noisy_repeat(agent: _Agent, steps: int) -> tuple[str, int, dict[str, Any]]:
    rng = agent.rng
    noise = rng.choice(("request_id", "timestamp", "cursor", "formatting"))
    name = {"timestamp": "get_job_status", "cursor": "list_issues"}.get(noise)
    name = name or rng.choice(agent.tools)
    if name not in agent.tools:
        agent.tools.append(name)
    base = _arguments(rng, name)
    styles = rng.sample(_STYLES, rng.randint(2, len(_STYLES)))
    for step in range(1, steps + 1):
        if noise == "formatting":
            arguments = agent.json(base, rng.choice(styles))
        else:
            arguments = agent.json(base | _noise(agent, noise, step))
        agent.call(name, arguments, step)
    return noise, 1, {"tool": name}


_OPENERS = ("", "Please ", "Could you ", "Try again: ", "Once more, ", "OK, ", "Let's retry. ")
_CLOSERS = ("", " Thanks.", " It still fails.", " Same error as before.", " Be careful this time.")
_VERBS = ("fix", "repair", "resolve", "sort out")
_OBJECTS = ("the failing build", "the broken build", "the build failure", "the CI failure")


def _rephrase(agent: _Agent, steps: int) -> tuple[str, int, dict[str, Any]]:
    rng = agent.rng
    variant = rng.choice(("counter", "reworded", "appended"))
    if rng.random() < 0.5:  # a pasted document or log
        agent.user(make_prompt(rng, 50, 6000))
    verb, thing, tail = rng.choice(_VERBS), rng.choice(_OBJECTS), make_prompt(rng, 3, 25)
    ask = f"{verb.capitalize()} {thing}: {tail}."
    stamp = rng.random() < 0.5
    previous = ""
    answer = rng.randint(100, 2500)
    for step in range(1, steps + 1):
        if variant == "counter":
            now = T0 + timedelta(seconds=agent.at)
            text = f"[{now:%Y-%m-%d %H:%M:%S}] {ask}" if stamp else f"{ask} (attempt {step})"
        elif variant == "reworded":
            text = previous
            while text == previous:
                opener, closer = rng.choice(_OPENERS), rng.choice(_CLOSERS)
                body = f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)}: {tail}."
                text = opener + (body if opener else body.capitalize()) + closer
            previous = text
        else:
            agent.user(ask if step == 1 else f"That did not work. {ask}")
            agent.answer(answer, step)
            continue
        agent.pending(text)
        agent.answer(answer, step, keep=False)
        agent.drop_pending()
    return variant, 1, {"ask_chars": len(ask)}


_PAIRS = (
    ("read_file", "edit_file"),
    ("search_web", "fetch_url"),
    ("edit_file", "run_tests"),
    ("query_db", "run_command"),
    ("list_dir", "read_file"),
    ("write_file", "run_command"),
)


def _ping_pong(agent: _Agent, steps: int) -> tuple[str, int, dict[str, Any]]:
    rng = agent.rng
    pair = rng.choice(_PAIRS)
    for name in pair:
        if name not in agent.tools:
            agent.tools.append(name)
    pools = [[_arguments(rng, name) for _ in range(rng.randint(1, 3))] for name in pair]
    noisy = [rng.random() < 0.25 for _ in pair]
    for step in range(1, steps + 1):
        side, round_ = (step - 1) % 2, (step - 1) // 2
        arguments = pools[side][round_ % len(pools[side])]
        if noisy[side]:
            arguments = arguments | {"request_id": _uuid(rng)}
        agent.call(pair[side], agent.json(arguments), step)
    # `fixed`: the plain two-step cycle; `changing`: arguments that vary from round to round.
    changing = any(noisy) or any(len(pool) > 1 for pool in pools)
    variants = {"arguments": [len(pool) for pool in pools], "request_ids": noisy}
    # Its period: no step repeats an earlier one before both pools have come round (a
    # request id is no new call: tool_arguments masks it).
    period = 2 * math.lcm(*(len(pool) for pool in pools))
    return "changing" if changing else "fixed", period, {"tools": list(pair)} | variants


_LOOPS: dict[str, Callable[[_Agent, int], tuple[str, int, dict[str, Any]]]] = {
    "exact_repeat": _exact_repeat,
    "noisy_repeat": _noisy_repeat,
    "rephrase": _rephrase,
    "ping_pong": _ping_pong,
}


def draw_loop_session(
    rng: random.Random, kind: str, session_id: str, loop_steps: int
) -> AgentSession:
    """A runaway session of `kind` that loops for `loop_steps` steps (nobody stops it)."""
    agent = _Agent(rng, session_id, _toolset(rng))
    warmup = rng.randint(0, 25)
    _honest(agent, warmup)
    variant, period, params = _LOOPS[kind](agent, loop_steps)
    # Spans carry no prompt fingerprint: a rephrase loop is only visible through the gateway.
    channel = rng.choice(CHANNELS[::2] if kind == "rephrase" else CHANNELS)
    return _session(agent, kind, variant, True, channel, period, params | {"warmup": warmup})


# --- legitimate sessions ------------------------------------------------------------------


def _varied(agent: _Agent, steps: int) -> dict[str, Any]:
    rng = agent.rng
    recheck = rng.uniform(0.0, 0.05)
    done: list[tuple[str, str]] = []
    while len(agent.turns) < steps:
        if done and rng.random() < recheck:
            agent.call(*rng.choice(done))  # look at something again
            continue
        if rng.random() < 0.1:
            agent.answer(rng.randint(80, 1500))
            continue
        name = rng.choice(agent.tools)
        done.append((name, agent.json(_arguments(rng, name))))
        agent.call(*done[-1])
    return {"recheck": round(recheck, 3)}


def _page_arguments(rng: random.Random, source: dict[str, Any], page: int) -> dict[str, Any]:
    if source["tool"] == "read_file":
        return {"path": source["path"], "offset": page * source["size"], "limit": source["size"]}
    if source["tool"] == "list_issues":
        return {"repo": source["repo"], "state": "open", "page": page + 1}
    if source["tool"] == "query_db":
        size = source["size"]
        return {"sql": f"SELECT * FROM {source['table']} LIMIT {size} OFFSET {page * size}"}
    return {"url": f"{source['url']}?page={page + 1}"}


def _paging(agent: _Agent, steps: int) -> dict[str, Any]:
    rng = agent.rng
    reread = rng.uniform(0.0, 0.05)
    read: list[tuple[str, str]] = []
    while len(agent.turns) < steps:
        tool = rng.choice(("read_file", "list_issues", "query_db", "fetch_url"))
        if tool not in agent.tools:
            agent.tools.append(tool)
        source = {
            "tool": tool,
            "path": _path(rng),
            "repo": f"acme/{rng.choice(_NAMES)}",
            "table": rng.choice(_NAMES),
            "url": _arguments(rng, "fetch_url")["url"],
            "size": rng.choice((50, 100, 200, 500, 2000)),
        }
        for page in range(rng.randint(5, 40)):
            if len(agent.turns) >= steps:
                break
            if read and rng.random() < reread:
                agent.call(*rng.choice(read))
            read.append((tool, agent.json(_page_arguments(rng, source, page))))
            agent.call(*read[-1])
            if rng.random() < 0.15:
                agent.answer(rng.randint(200, 2000))  # notes on what was read
    return {"reread": round(reread, 3)}


def _research(agent: _Agent, steps: int) -> dict[str, Any]:
    rng = agent.rng
    refetch = rng.uniform(0.0, 0.05)
    for tool in ("search_web", "fetch_url"):
        if tool not in agent.tools:
            agent.tools.append(tool)
    fetched: list[str] = []
    while len(agent.turns) < steps:
        agent.call("search_web", agent.json(_arguments(rng, "search_web")))
        for _ in range(rng.randint(1, 4)):
            if fetched and rng.random() < refetch:
                agent.call("fetch_url", rng.choice(fetched))
            fetched.append(agent.json(_arguments(rng, "fetch_url")))
            agent.call("fetch_url", fetched[-1])
        if rng.random() < 0.3:
            agent.answer(rng.randint(300, 3000))
        if rng.random() < 0.1:  # the user reads and asks a follow-up question
            agent.user(make_prompt(rng, 5, 60), wait_s=rng.uniform(10.0, 180.0))
    return {"refetch": round(refetch, 3)}


def _coding(agent: _Agent, steps: int) -> dict[str, Any]:
    rng = agent.rng
    for tool in ("read_file", "edit_file", "run_tests", "run_command", "grep"):
        if tool not in agent.tools:
            agent.tools.append(tool)
    files = list(dict.fromkeys(_path(rng) for _ in range(rng.randint(5, 60))))
    suite = rng.choice(_SUITES)
    whole_suite = rng.random()  # share of test runs that run the whole suite
    test_every = rng.randint(1, 4)
    failing = rng.uniform(0.1, 0.5)
    edits = 0
    while len(agent.turns) < steps:
        path = rng.choice(files)
        if rng.random() < 0.8:
            agent.call("read_file", agent.json({"path": path}))
        for _ in range(rng.randint(1, 3)):
            old, new = make_prompt(rng, 2, 30), make_prompt(rng, 2, 40)
            edit = {"path": path, "old_string": old, "new_string": new}
            agent.call("edit_file", agent.json(edit))
            edits += 1
        if edits % test_every == 0:
            stem = path.rsplit("/", 1)[-1]
            command = suite if rng.random() < whole_suite else f"pytest -q tests/test_{stem}"
            agent.call("run_tests", agent.json({"command": command}))
            for _ in range(3):  # fix until green, the same test again
                if rng.random() >= failing:
                    break
                fix = {"path": path, "old_string": make_prompt(rng, 2, 20), "new_string": "x"}
                agent.call("edit_file", agent.json(fix))
                agent.call("run_tests", agent.json({"command": command}))
        if rng.random() < 0.08:
            command = rng.choice(("git status", "git diff"))
            agent.call("run_command", agent.json({"command": command}))
        if rng.random() < 0.1:
            agent.call("grep", agent.json(_arguments(rng, "grep")))
    return {
        "files": len(files),
        "suite_share": round(whole_suite, 2),
        "test_every": test_every,
        "failing": round(failing, 2),
    }


_LEGIT: dict[str, Callable[[_Agent, int], dict[str, Any]]] = {
    "varied": _varied,
    "paging": _paging,
    "research": _research,
    "coding": _coding,
}


def draw_legit_session(rng: random.Random, kind: str, session_id: str) -> AgentSession:
    """A legitimate session of `kind`, 20-200 steps, ending with the model's answer."""
    agent = _Agent(rng, session_id, _toolset(rng))
    steps = int(_log_uniform(rng, 20, 200))
    params = _LEGIT[kind](agent, steps - 1)
    agent.answer(rng.randint(200, 3000))
    channel = rng.choice(CHANNELS)
    return _session(agent, kind, "-", False, channel, 0, params | {"steps": len(agent.turns)})


def _session(
    agent: _Agent,
    kind: str,
    variant: str,
    loop: bool,
    channel: str,
    period: int,
    params: dict[str, Any],
) -> AgentSession:
    rng = agent.rng
    # OpenInference records content unless told not to; GenAI instrumentations only when asked.
    instrumentation = rng.choice(("openinference", "genai"))
    capture = rng.random() < (0.7 if instrumentation == "openinference" else 0.3)
    return AgentSession(
        agent.session_id,
        kind,
        variant,
        loop,
        channel,
        instrumentation,
        capture,
        agent.model,
        tuple(agent.turns),
        period,
        params,
    )
