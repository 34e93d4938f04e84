"""OpenAI legacy completions (`POST /v1/completions`).

`prompt` is a string, an array of strings, an array of token ids or an array of such
arrays; only strings are text (guardrails, prompt stats, signature). Streams carry
`choices[i].text` deltas and, as for chat, the usage chunk the gateway asks for.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.apis.base import Dialect, ParsedRequest, Slot, StreamReader, StreamText
from gateway.apis.chat import (
    apply_openai_usage,
    choice_stream_texts,
    openai_stream_error,
    openai_summary,
)
from gateway.apis.validation import (
    MAX_INT,
    empty_array,
    int_field,
    load_object,
    missing,
    model_field,
    optional_type,
    stream_flag,
    wrong_type,
)
from gateway.bounds import MAX_MODEL_CHARS, clip
from gateway.errors import GatewayError
from gateway.sse import encode_event
from gateway.usage import ResponseSummary

__all__ = ["COMPLETIONS", "CompletionsDialect", "CompletionsStreamReader"]

_MAX_N = 128
_PROMPT_TYPE = "a string, an array of strings, an array of integers or an array of arrays"


def _is_token(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_INT


def _prompt(value: Any) -> None:
    if value is None:
        raise missing("prompt")
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise wrong_type("prompt", _PROMPT_TYPE, value)
    if not value:
        raise empty_array("prompt")
    if all(isinstance(item, str) for item in value) or all(_is_token(item) for item in value):
        return
    for index, item in enumerate(value):
        if not (isinstance(item, list) and item and all(_is_token(t) for t in item)):
            raise wrong_type(f"prompt[{index}]", "a string or an array of integers", item)


class CompletionsStreamReader(StreamReader):
    """A ResponseSummary from the chunks of a completions stream."""

    def __init__(self, hide_usage: bool = False) -> None:
        self.summary = ResponseSummary()
        self._hide_usage = hide_usage

    def feed(self, name: str | None, payload: Any) -> bool:
        if not isinstance(payload, dict):
            return False
        summary = self.summary
        if summary.model_used is None and isinstance(payload.get("model"), str):
            summary.model_used = clip(payload["model"], MAX_MODEL_CHARS)
        if payload.get("usage"):
            apply_openai_usage(summary, payload["usage"])
        choices = payload.get("choices")
        if not choices:
            return self._hide_usage and bool(payload.get("usage"))
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("finish_reason"), str):
                summary.finish_reason = clip(choice["finish_reason"])
            if isinstance(choice.get("text"), str):
                summary.response_chars += len(choice["text"])
        return False

    @property
    def started(self) -> bool:
        return self.summary.response_chars > 0

    def finish(self) -> ResponseSummary:
        return self.summary


class CompletionsDialect(Dialect):
    name = "completions"
    endpoint = "/v1/completions"
    upstream_path = "/completions"
    prompt_field = "prompt"
    hashed_fields: tuple[str, ...] = ("prompt",)

    def parse(self, raw: bytes) -> ParsedRequest:
        body = load_object(raw)
        model = model_field(body)
        _prompt(body.get("prompt"))
        optional_type(body, "suffix", str)
        stream = stream_flag(body)
        max_tokens = int_field(body, "max_tokens", 0, MAX_INT)
        int_field(body, "n", 1, _MAX_N)
        int_field(body, "best_of", 0, 20)
        int_field(body, "logprobs", 0, 5)
        optional_type(body, "echo", bool)
        optional_type(body, "user", str)
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise wrong_type("stream_options", "an object", options)
        return ParsedRequest(
            body=body,
            model=model,
            stream=stream,
            max_tokens=max_tokens,
            client_wants_usage=bool(options and options.get("include_usage") is True),
        )

    def input_slots(self, body: dict[str, Any]) -> list[Slot]:
        value = body.get("prompt")
        if isinstance(value, str):
            return [(body, "prompt", True)]
        if isinstance(value, list):
            return [(value, i, True) for i, item in enumerate(value) if isinstance(item, str)]
        return []

    def output_slots(self, response: Any) -> list[Slot]:
        choices = response.get("choices") if isinstance(response, dict) else None
        return [
            (choice, "text", False)
            for choice in (choices if isinstance(choices, list) else ())
            if isinstance(choice, dict) and isinstance(choice.get("text"), str)
        ]

    def summarize(self, response: Any) -> ResponseSummary:
        summary, choices = openai_summary(response)
        for choice in choices:
            if isinstance(choice.get("text"), str):
                summary.response_chars += len(choice["text"])
        return summary

    def stream_reader(self, parsed: ParsedRequest) -> CompletionsStreamReader:
        return CompletionsStreamReader(hide_usage=not parsed.client_wants_usage)

    def stream_body(self, parsed: ParsedRequest, raw: bytes) -> bytes:
        if parsed.client_wants_usage:
            return raw
        request = dict(parsed.body)
        options = dict(request.get("stream_options") or {})
        options["include_usage"] = True
        request["stream_options"] = options
        return orjson.dumps(request)

    def stream_texts(self, name: str | None, payload: Any) -> list[StreamText]:
        return choice_stream_texts(payload, "text")

    def text_event(self, index: int, text: str, template: Any) -> bytes:
        choice = {"index": index, "text": text, "logprobs": None, "finish_reason": None}
        base = template if isinstance(template, dict) else {}
        return encode_event({**base, "choices": [choice]})

    def error_body(self, error: GatewayError) -> bytes:
        return error.render()

    def stream_error(self, error: GatewayError) -> bytes:
        return openai_stream_error(error)


COMPLETIONS = CompletionsDialect()
