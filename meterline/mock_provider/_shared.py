"""Pure, deterministic helpers shared by every API the mock speaks (no I/O but `_respond`)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Api = Literal["chat", "completions", "responses", "messages"]

_WORDS = (
    "the", "meter", "counts", "every", "token", "while", "streams", "flow", "through",
    "kafka", "and", "budgets", "burn", "slowly", "alerts", "wake", "security", "finance",
    "sees", "spend", "per", "team", "model", "day",
)  # fmt: skip
JSON = [(b"content-type", b"application/json")]
SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
REPLY_PIECE_CHARS = 8  # small on purpose: scripted replies split words across chunks
TOOL_CALL_TOKENS = 12
_MAX_TOKENS_FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("max_tokens", "max_completion_tokens"),
    "completions": ("max_tokens",),
    "responses": ("max_output_tokens",),
    "messages": ("max_tokens",),
}


class MalformedRequest(ValueError):
    """The body does not have the shape the API needs (rendered as a 400)."""


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
    return 0


def prompt_tokens(messages: list[Any]) -> int:
    """`ceil(chars / 4) + 3` per message (text parts counted, other parts free)."""
    return sum(
        math.ceil(_text_chars(m.get("content")) / 4) + 3 for m in messages if isinstance(m, dict)
    )


def completion_for(digest: bytes, max_tokens: int | None) -> tuple[list[str], str]:
    """(words, finish_reason): 8..47 words chosen by the prompt hash; one word = one token."""
    count = 8 + int.from_bytes(digest[:4], "big") % 40
    finish = "stop"
    if max_tokens is not None and max_tokens < count:
        count, finish = max(max_tokens, 0), "length"
    words = [_WORDS[(digest[i % len(digest)] + i) % len(_WORDS)] for i in range(count)]
    return words, finish


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def conversation(api: Api, body: dict[str, Any]) -> list[Any]:
    """The chat-completions messages equivalent to `body`: what every API is answered from.

    Messages: `system` first as a system message; Responses: `instructions` as a system
    message, then `input` (a string is one user message, a list is taken item by item);
    completions: the prompt as one user message. So the same conversation gets the same
    reply and the same input tokens whichever API carries it.
    """
    if api == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise MalformedRequest("'messages' must be a list")
        return messages
    if api == "messages":
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise MalformedRequest("messages: Field required (a list)")
        system = body.get("system")
        return [{"role": "system", "content": system}, *messages] if system else messages
    if api == "responses":
        value = body.get("input")
        items: list[Any]
        if isinstance(value, str):
            items = [{"role": "user", "content": value}]
        elif isinstance(value, list):
            items = value
        else:
            raise MalformedRequest("'input' must be a string or a list")
        instructions = body.get("instructions")
        return [{"role": "system", "content": instructions}, *items] if instructions else items
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise MalformedRequest("'prompt' must be a string (or a list of strings)")
    return [{"role": "user", "content": prompt}]


def _scripted_reply(body: dict[str, Any], messages: list[Any]) -> str | None:
    """`mock_reply` verbatim, or with `mock_echo` the last user message's text; else None."""
    reply = body.get("mock_reply")
    if isinstance(reply, str):
        return reply
    if body.get("mock_echo") is not True:
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p["text"] for p in content if isinstance(p, dict) and "text" in p)
            return content if isinstance(content, str) else ""
    return ""


def _tool_name(api: Api, body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if api == "completions" or not isinstance(tools, list) or not tools:
        return None
    choice = body.get("tool_choice")
    if choice == "none" or (isinstance(choice, dict) and choice.get("type") == "none"):
        return None
    first = tools[0] if isinstance(tools[0], dict) else {}
    if api == "chat":
        first = first.get("function") or {}
    return str(first.get("name") or "tool")


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one answer is made of; a pure function of the request (see `plan_for`)."""

    digest: bytes
    words: list[str]
    finish: str  # "stop" | "length" | "tool_calls"
    reply: str | None  # scripted text, streamed in 8-character pieces
    tool_name: str | None
    tool_arguments: str | None  # a JSON string
    input_tokens: int  # the whole prompt, cached parts included
    output_tokens: int
    reasoning_tokens: int
    cached_tokens: int  # cache reads, <= input_tokens
    cache_write_tokens: int  # cache writes (Anthropic), <= input_tokens - cached_tokens

    @property
    def text(self) -> str:
        return " ".join(self.words)


def plan_for(api: Api, body: dict[str, Any], headers: dict[bytes, bytes] | None = None) -> Plan:
    """The deterministic answer to `body` on `api` (raises MalformedRequest)."""
    messages = conversation(api, body)
    digest = hashlib.sha256(orjson.dumps(messages)).digest()
    max_tokens = None
    for field in _MAX_TOKENS_FIELDS[api]:
        max_tokens = int_or_none(body.get(field))
        if max_tokens is not None:
            break
    words, finish = completion_for(digest, max_tokens)
    reply = _scripted_reply(body, messages)
    if reply is not None:
        words, finish = reply.split(" "), "stop"
    tool_name = _tool_name(api, body)
    arguments = None
    if tool_name is not None:
        arguments = body.get("mock_tool_arguments")
        if not isinstance(arguments, str):
            arguments = orjson.dumps({"q": digest.hex()[:8]}).decode()
        words, finish = [], "tool_calls"
    n_prompt = prompt_tokens(messages)
    headers = headers or {}
    cached = _body_or_header(body, headers, "mock_cached_tokens", b"x-mock-cached-tokens")
    written = _body_or_header(
        body, headers, "mock_cache_write_tokens", b"x-mock-cache-write-tokens"
    )
    cached = min(max(cached, 0), n_prompt)
    reasoning = int_or_none(body.get("mock_reasoning_tokens")) or 0
    n_out = (len(words) if tool_name is None else TOOL_CALL_TOKENS) + reasoning
    return Plan(
        digest=digest,
        words=words,
        finish=finish,
        reply=reply,
        tool_name=tool_name,
        tool_arguments=arguments,
        input_tokens=n_prompt,
        output_tokens=n_out,
        reasoning_tokens=reasoning,
        cached_tokens=cached,
        cache_write_tokens=min(max(written, 0), n_prompt - cached),
    )


def _body_or_header(
    body: dict[str, Any], headers: dict[bytes, bytes], field: str, name: bytes
) -> int:
    value = int_or_none(body.get(field))
    if value is None and name in headers:
        raw = headers[name]
        value = int(raw) if raw.isdigit() else None
    return value or 0


def system_cache_tokens(body: dict[str, Any]) -> int:
    """Tokens of a Messages `system` prompt that carries a `cache_control` marker, else 0."""
    system = body.get("system")
    if isinstance(system, list) and any(
        isinstance(b, dict) and b.get("cache_control") for b in system
    ):
        return prompt_tokens([{"content": system}])
    return 0


def usage_of(api: Api, plan: Plan) -> dict[str, Any]:
    """The usage object exactly as `api` reports it for `plan`."""
    n_in, n_out = plan.input_tokens, plan.output_tokens
    if api == "chat":
        return {
            "prompt_tokens": n_in,
            "completion_tokens": n_out,
            "total_tokens": n_in + n_out,
            "prompt_tokens_details": {"cached_tokens": plan.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
        }
    if api == "completions":
        return {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
    if api == "responses":
        return {
            "input_tokens": n_in,
            "input_tokens_details": {
                "cached_tokens": plan.cached_tokens,
                "cache_write_tokens": plan.cache_write_tokens,
            },
            "output_tokens": n_out,
            "output_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
            "total_tokens": n_in + n_out,
        }
    return {  # Anthropic: input_tokens excludes cache reads and writes
        "input_tokens": n_in - plan.cached_tokens - plan.cache_write_tokens,
        "cache_creation_input_tokens": plan.cache_write_tokens,
        "cache_read_input_tokens": plan.cached_tokens,
        "output_tokens": n_out,
    }


def with_prompt_cache(plan: Plan, prefix_tokens: int, warm: bool) -> Plan:
    """`plan` with a cached system prefix: written on first sight (`warm` False), else read."""
    from dataclasses import replace

    prefix = min(prefix_tokens, plan.input_tokens)
    if warm:
        return replace(plan, cached_tokens=prefix, cache_write_tokens=0)
    return replace(plan, cached_tokens=0, cache_write_tokens=prefix)


def input_tokens_for(api: Api, body: dict[str, Any]) -> int:
    """The whole prompt's tokens for `body` on `api` (what `/v1/messages/count_tokens` says)."""
    return prompt_tokens(conversation(api, body))


def usage_for(
    api: Api,
    body: dict[str, Any],
    headers: dict[bytes, bytes] | None = None,
    *,
    prompt_cached: bool = False,
) -> dict[str, Any]:
    """The usage the mock reports for `body` on `api` (`chat`, `completions`, `responses`,
    `messages`). For a Messages request whose system prompt has a `cache_control` marker
    and no `mock_cache*` field, `prompt_cached` says whether that deployment has seen that
    system prompt before (cache read) or not (cache write). Completions with a list prompt:
    the sum over the prompts, each answered as a one-string prompt."""
    if api == "completions" and isinstance(body.get("prompt"), list):
        parts = [usage_for(api, {**body, "prompt": p}, headers) for p in body["prompt"]]
        return {
            k: sum(p[k] for p in parts)
            for k in ("prompt_tokens", "completion_tokens", "total_tokens")
        }
    plan = plan_for(api, body, headers)
    if api == "messages" and not plan.cached_tokens and not plan.cache_write_tokens:
        prefix = system_cache_tokens(body)
        if prefix:
            plan = with_prompt_cache(plan, prefix, prompt_cached)
    return usage_of(api, plan)


def openai_error(status: int, message: str, code: str | None = None) -> bytes:
    type_ = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if code is None and status == 429:
        code = "rate_limit_exceeded"  # what OpenAI sends with its 429s
    return orjson.dumps({"error": {"message": message, "type": type_, "code": code, "param": None}})


def anthropic_error(status: int, message: str) -> bytes:
    type_ = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*(headers or JSON), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def sse(event: dict[str, Any], named: bool = False) -> bytes:
    """One SSE frame; `named` adds the `event:` line (Anthropic and Responses streams)."""
    data = b"data: " + orjson.dumps(event) + b"\n\n"
    return b"event: " + event["type"].encode() + b"\n" + data if named else data


def text_pieces(plan: Plan) -> list[str]:
    """The reply as stream deltas: 8-character pieces of a scripted reply, else 4 word runs."""
    if plan.reply is not None:
        reply = plan.reply
        return [reply[i : i + REPLY_PIECE_CHARS] for i in range(0, len(reply), REPLY_PIECE_CHARS)]
    words = plan.words
    step = max(1, math.ceil(len(words) / 4))
    return [
        (" " if start else "") + " ".join(words[start : start + step])
        for start in range(0, len(words), step)
    ]
