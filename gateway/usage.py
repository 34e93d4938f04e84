"""What the gateway learns from an upstream answer: tokens, model, finish, tool calls.

Plain functions over parsed JSON, so they are unit-tested without any network. Strings the
upstream sends back (model, tool names) are clipped and tool calls capped (gateway.bounds):
they land in events, and an upstream echoes what the client chose.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from gateway.bounds import MAX_MODEL_CHARS, MAX_TEXT_CHARS, MAX_TOOL_CALLS, clip

__all__ = ["ResponseSummary", "StreamAccumulator", "summarize_response"]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(slots=True)
class ResponseSummary:
    model_used: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0
    response_chars: int = 0
    finish_reason: str | None = None
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    has_usage: bool = False

    def apply_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        self.has_usage = True
        self.input_tokens = _int(usage.get("prompt_tokens"))
        self.output_tokens = _int(usage.get("completion_tokens"))
        prompt_details = usage.get("prompt_tokens_details")
        if isinstance(prompt_details, dict):
            self.cache_read_tokens = _int(prompt_details.get("cached_tokens"))
        completion_details = usage.get("completion_tokens_details")
        if isinstance(completion_details, dict):
            self.reasoning_tokens = _int(completion_details.get("reasoning_tokens"))


def summarize_response(obj: Any) -> ResponseSummary:
    """Summary of a non-streaming chat completion or embeddings response."""
    summary = ResponseSummary()
    if not isinstance(obj, dict):
        return summary
    if isinstance(obj.get("model"), str):
        summary.model_used = clip(obj["model"], MAX_MODEL_CHARS)
    summary.apply_usage(obj.get("usage"))
    choices = obj.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if summary.finish_reason is None and isinstance(choice.get("finish_reason"), str):
                summary.finish_reason = clip(choice["finish_reason"])
            message = choice.get("message")
            if not isinstance(message, dict):
                continue
            if isinstance(message.get("content"), str):
                summary.response_chars += len(message["content"])
            calls = message.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and len(summary.tool_calls) < MAX_TOOL_CALLS:
                    arguments = function.get("arguments")
                    summary.tool_calls.append(
                        {
                            "name": clip(str(function.get("name") or "")),
                            "arguments_hash": _sha256(
                                arguments if isinstance(arguments, str) else ""
                            ),
                        }
                    )
    return summary


class StreamAccumulator:
    """Builds a ResponseSummary from the chunks of a chat completion stream."""

    def __init__(self) -> None:
        self.summary = ResponseSummary()
        # tool call index -> [name, arguments so far]
        self._tools: dict[int, list[str]] = {}

    def feed(self, chunk: Any) -> bool:
        """Account for one parsed chunk; return True if it is a usage-only chunk."""
        if not isinstance(chunk, dict):
            return False
        summary = self.summary
        if summary.model_used is None and isinstance(chunk.get("model"), str):
            summary.model_used = clip(chunk["model"], MAX_MODEL_CHARS)
        choices = chunk.get("choices")
        if chunk.get("usage"):
            summary.apply_usage(chunk["usage"])
        if not choices:
            return bool(chunk.get("usage"))
        if not isinstance(choices, list):
            return False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("finish_reason"), str):
                summary.finish_reason = clip(choice["finish_reason"])
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                summary.response_chars += len(delta["content"])
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                self._feed_tool_call(call)
        return False

    @property
    def has_tool_calls(self) -> bool:
        return bool(self._tools)

    def _feed_tool_call(self, call: Any) -> None:
        if not isinstance(call, dict):
            return
        index = _int(call.get("index"))
        if index not in self._tools and len(self._tools) >= MAX_TOOL_CALLS:
            return
        entry = self._tools.setdefault(index, ["", ""])
        function = call.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("name"), str) and len(entry[0]) < MAX_TEXT_CHARS:
                entry[0] = clip(entry[0] + function["name"])
            if isinstance(function.get("arguments"), str):
                entry[1] += function["arguments"]

    def finish(self) -> ResponseSummary:
        self.summary.tool_calls = [
            {"name": name, "arguments_hash": _sha256(arguments)}
            for _, (name, arguments) in sorted(self._tools.items())
        ]
        return self.summary
