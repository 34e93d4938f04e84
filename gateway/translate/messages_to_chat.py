"""Anthropic Messages -> OpenAI chat completions: the client speaks Messages, the upstream chat.

Three pieces, all pure (plain dicts in, plain dicts out, no I/O, no clock):

- `messages_request_to_chat(body)`: a Messages request body -> a chat-completions request body.
  Raises `InvalidRequest` (with `param`) for what cannot be translated faithfully.
- `chat_response_to_messages(completion)`: a `chat.completion` -> an Anthropic Message.
- `MessagesEventsFromChatStream`: chat chunks in, Anthropic SSE `(event, payload)` pairs out.

Anything malformed coming back from the upstream raises `UpstreamUnavailable` ("upstream sent a
malformed answer"), never anything else.

Decisions:

- `system` (string or text blocks) becomes one leading system message; text blocks are joined
  with "\\n" (a plain string is what every OpenAI-compatible server accepts).
- `tool_result` blocks become `tool` messages placed before the rest of their user turn (chat
  requires tool messages right after the assistant's tool calls); their text blocks are joined
  with "\\n". `is_error` has no chat equivalent and is dropped. Images in a tool result are
  rejected (chat tool messages carry text only).
- `thinking`/`redacted_thinking` blocks in the history are dropped (chat cannot carry them);
  `cache_control` is dropped everywhere.
- `max_tokens` goes to `max_completion_tokens` by default (OpenAI's current field); pass
  `max_tokens_field="max_tokens"` for servers that only know the older one.
- `top_k`, `thinking`, `service_tier`, `container`, `mcp_servers` and other Anthropic-only
  fields are dropped. Server tools (`web_search_*`, `bash_*`, ...) are rejected.
- A stream request gets `stream_options.include_usage: true` so the usage can be metered and
  reported in `message_delta`.
- Response ids: `msg_` + the chat id without its `chatcmpl-` prefix.
- `finish_reason` stop -> `end_turn` (chat does not say whether a stop sequence matched, so
  `stop_sequence` is always null), length -> `max_tokens`, tool_calls/function_call ->
  `tool_use`, content_filter -> `refusal`.
- Usage: `input_tokens` = prompt_tokens - cached_tokens, `cache_read_input_tokens` = cached,
  `cache_creation_input_tokens` = 0 (chat does not report cache writes), `output_tokens` =
  completion_tokens. A response without usage reports zeros.
- A tool call's `arguments` that is not a JSON object becomes `input: {}`.
"""

from __future__ import annotations

from typing import Any

from gateway.translate._common import (
    SHAPE_ERRORS,
    arguments_to_input,
    dumps,
    invalid,
    malformed,
    upstream_error,
)

__all__ = [
    "MessagesEventsFromChatStream",
    "chat_response_to_messages",
    "messages_request_to_chat",
]

# chat `finish_reason` -> Messages `stop_reason`.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


# --------------------------------------------------------------------------- request


def messages_request_to_chat(
    body: dict[str, Any], *, max_tokens_field: str = "max_completion_tokens"
) -> dict[str, Any]:
    """An Anthropic Messages request body -> a chat-completions request body.

    `model` is carried as is (the caller substitutes the upstream model name).
    """
    if not isinstance(body, dict):
        invalid("body", "must be a JSON object")
    if not isinstance(body.get("model"), str):
        invalid("model", "must be a string")
    messages: list[dict[str, Any]] = []
    system = _system(body.get("system"), "system")
    if system:
        messages.append({"role": "system", "content": system})
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        invalid("messages", "must be a non-empty array")
    for i, turn in enumerate(turns):
        messages.extend(_turn(turn, f"messages[{i}]"))
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            invalid("max_tokens", "must be a positive integer")
        out[max_tokens_field] = max_tokens
    for field in ("temperature", "top_p"):
        value = body.get(field)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                invalid(field, "must be a number")
            out[field] = value
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            invalid("stop_sequences", "must be an array of strings")
        if stops:
            out["stop"] = stops
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        _tool_choice(body.get("tool_choice"), out)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id") is not None:
        if not isinstance(metadata["user_id"], str):
            invalid("metadata.user_id", "must be a string")
        out["user"] = metadata["user_id"]
    stream = body.get("stream")
    if stream is not None:
        if not isinstance(stream, bool):
            invalid("stream", "must be a boolean")
        out["stream"] = stream
        if stream:
            out["stream_options"] = {"include_usage": True}
    return out


def _system(system: Any, where: str) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if not isinstance(system, list):
        invalid(where, "must be a string or an array of text blocks")
    return "\n".join(_text(block, f"{where}[{j}]") for j, block in enumerate(system))


def _text(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        invalid(where, "only text blocks are allowed here")
    if not isinstance(block.get("text"), str):
        invalid(f"{where}.text", "must be a string")
    return block["text"]


def _turn(turn: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(turn, dict):
        invalid(where, "must be an object")
    role, content = turn.get("role"), turn.get("content")
    if role == "system":
        return [{"role": "system", "content": _system(content, f"{where}.content")}]
    if role not in ("user", "assistant"):
        invalid(f"{where}.role", "must be user or assistant")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        invalid(f"{where}.content", "must be a string or an array of content blocks")
    if role == "assistant":
        return [_assistant(content, f"{where}.content")]
    return _user(content, f"{where}.content")


def _user(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, at)})
        elif kind == "image":
            parts.append(_image(block.get("source"), f"{at}.source"))
        elif kind == "document":
            parts.append(_document(block.get("source"), f"{at}.source"))
        elif kind == "tool_result":
            tool_messages.append(_tool_result(block, at))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            invalid(f"{at}.type", f"content block {kind!r} is not supported for this model")
    if parts:
        return [*tool_messages, {"role": "user", "content": parts}]
    return tool_messages


def _image(source: Any, where: str) -> dict[str, Any]:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    if kind == "base64" and isinstance(source.get("data"), str):
        media_type = source.get("media_type")
        if not isinstance(media_type, str):
            invalid(f"{where}.media_type", "must be a string")
        url = f"data:{media_type};base64,{source['data']}"
        return {"type": "image_url", "image_url": {"url": url}}
    invalid(where, "only url and base64 image sources are supported for this model")


def _document(source: Any, where: str) -> dict[str, Any]:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    if (
        kind == "base64"
        and source.get("media_type") == "application/pdf"
        and isinstance(source.get("data"), str)
    ):
        data = f"data:application/pdf;base64,{source['data']}"
        return {"type": "file", "file": {"filename": "document.pdf", "file_data": data}}
    invalid(where, "only base64 PDF and plain-text documents are supported for this model")


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        invalid(f"{where}.tool_use_id", "must be a string")
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(_text(b, f"{where}.content[{k}]") for k, b in enumerate(content))
    else:
        invalid(f"{where}.content", "must be a string or an array of text blocks")
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _assistant(blocks: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "tool_use":
            call_id, name, args = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(call_id, str) or not isinstance(name, str):
                invalid(at, "tool_use needs a string id and name")
            if not isinstance(args, dict):
                invalid(f"{at}.input", "must be an object")
            function = {"name": name, "arguments": _dumps(args)}
            calls.append({"id": call_id, "type": "function", "function": function})
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            invalid(f"{at}.type", f"content block {kind!r} is not supported for this model")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _dumps(value: Any) -> str:
    try:
        return dumps(value)
    except TypeError:
        invalid("messages", "tool_use input is not JSON-serialisable")


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        invalid("tools", "must be an array")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            invalid(f"tools[{i}]", "must be an object")
        if tool.get("type", "custom") != "custom":
            invalid(f"tools[{i}].type", f"tool type {tool['type']!r} is not supported")
        if not isinstance(tool.get("name"), str):
            invalid(f"tools[{i}].name", "must be a string")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            invalid(f"tools[{i}].input_schema", "must be a JSON schema object")
        function: dict[str, Any] = {"name": tool["name"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        function["parameters"] = schema
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        invalid("tool_choice", "must be auto, any, none or a tool choice with a name")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


# --------------------------------------------------------------------------- response


def message_id(chat_id: str) -> str:
    return "msg_" + chat_id.removeprefix("chatcmpl-")


def chat_usage_to_messages(usage: Any) -> dict[str, int]:
    """chat usage (or None) -> Anthropic usage; cached prompt tokens become cache reads."""
    if usage is None:
        usage = {}
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") or 0
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for v in (prompt, completion, cached)
    ):
        malformed("usage")
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": completion,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def chat_response_to_messages(completion: dict[str, Any]) -> dict[str, Any]:
    """A `chat.completion` (non-streaming answer, first choice) -> an Anthropic Message."""
    try:
        return _response(completion)
    except SHAPE_ERRORS:
        malformed()


def _response(completion: dict[str, Any]) -> dict[str, Any]:
    if "error" in completion:
        upstream_error((completion["error"] or {}).get("message"))
    choice = completion["choices"][0]
    message = choice["message"]
    content: list[dict[str, Any]] = []
    text = message.get("content")
    refusal = message.get("refusal")
    if text:
        content.append({"type": "text", "text": _str(text)})
    elif refusal:
        content.append({"type": "text", "text": _str(refusal)})
    for call in message.get("tool_calls") or ():
        function = call["function"]
        content.append(
            {
                "type": "tool_use",
                "id": _str(call["id"]),
                "name": _str(function["name"]),
                "input": arguments_to_input(function.get("arguments")),
            }
        )
    finish = choice.get("finish_reason")
    stop_reason = STOP_REASONS.get(finish, "end_turn")
    if refusal and not text and finish == "stop":
        stop_reason = "refusal"
    return {
        "id": message_id(_str(completion["id"])),
        "type": "message",
        "role": "assistant",
        "model": _str(completion["model"]),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": chat_usage_to_messages(completion.get("usage")),
    }


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


# --------------------------------------------------------------------------- stream

Event = tuple[str, dict[str, Any]]


class MessagesEventsFromChatStream:
    """chat.completion.chunk dicts -> Anthropic Messages SSE events, one chunk at a time.

        stream = MessagesEventsFromChatStream()
        for chunk in upstream_chunks:                  # parsed `data:` lines, [DONE] excluded
            for name, payload in stream.feed(chunk):
                send(f"event: {name}\\ndata: ".encode() + orjson.dumps(payload) + b"\\n\\n")
        for name, payload in stream.finish():          # on [DONE] (or end of body)
            send(...)
        meter(stream.usage)                            # Anthropic usage, or None if never sent

    **Parameters:**
    * **model** - model reported in `message_start` (default: the first chunk's `model`).

    `message_start` goes out with the first chunk and reports `input_tokens: 0`: a chat stream
    tells its usage only in its last chunk, so the real input, cache-read and output counts are
    carried by `message_delta.usage`, which is held back until the usage chunk (or `finish()`)
    arrives. Send the events of `finish()` too: it closes the message when the usage chunk never
    came (`stream_options.include_usage` ignored by the upstream) or the upstream stopped without
    a finish_reason (`end_turn` then). `finish()` raises `UpstreamUnavailable` when nothing at all
    was received; `feed` raises it on a malformed chunk or an `{"error": ...}` chunk.
    Text and tool calls become content blocks in arrival order; a tool call's arguments that
    arrive after another block was opened cannot be expressed and are a malformed answer.
    """

    def __init__(self, *, model: str | None = None):
        self.model = model
        self.id: str | None = None
        self.usage: dict[str, int] | None = None
        """Anthropic-shaped usage once the upstream reported it (None until then)."""
        self.finish_reason: str | None = None
        self.done = False
        self._block: int = -1  # index of the open content block, -1 when none is open
        self._block_kind: str | None = None
        self._blocks = 0
        self._tool_blocks: dict[int, int] = {}  # chat tool_calls index -> content block index

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self.done:
            return []
        try:
            return self._feed(chunk)
        except SHAPE_ERRORS:
            malformed()

    def finish(self) -> list[Event]:
        if self.done:
            return []
        if self.id is None:
            malformed("empty stream")
        return self._close()

    # ------------------------------------------------------------------ internals

    def _feed(self, chunk: dict[str, Any]) -> list[Event]:
        if "error" in chunk:
            upstream_error((chunk["error"] or {}).get("message"))
        events: list[Event] = []
        if self.id is None:
            events.append(self._start(chunk))
        usage = chunk.get("usage")
        if usage is not None:
            self.usage = chat_usage_to_messages(usage)
        choices = chunk.get("choices") or ()
        for choice in choices:
            if choice.get("index", 0) != 0:
                continue  # n=1 is all Messages can express
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if text:
                events.extend(self._text(_str(text)))
            for call in delta.get("tool_calls") or ():
                events.extend(self._tool_call(call))
            finish = choice.get("finish_reason")
            if finish is not None and self.finish_reason is None:
                self.finish_reason = _str(finish)
                events.extend(self._stop_block())
        if self.finish_reason is not None and self.usage is not None:
            events.extend(self._close())
        return events

    def _start(self, chunk: dict[str, Any]) -> Event:
        self.id = message_id(_str(chunk["id"]))
        if self.model is None:
            self.model = _str(chunk["model"])
        message = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return "message_start", {"type": "message_start", "message": message}

    def _open(self, kind: str, block: dict[str, Any]) -> list[Event]:
        events = self._stop_block()
        self._block, self._block_kind = self._blocks, kind
        self._blocks += 1
        payload = {"type": "content_block_start", "index": self._block, "content_block": block}
        events.append(("content_block_start", payload))
        return events

    def _stop_block(self) -> list[Event]:
        if self._block < 0:
            return []
        index, self._block, self._block_kind = self._block, -1, None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _delta(self, delta: dict[str, Any]) -> Event:
        payload = {"type": "content_block_delta", "index": self._block, "delta": delta}
        return "content_block_delta", payload

    def _text(self, text: str) -> list[Event]:
        events = []
        if self._block_kind != "text":
            events = self._open("text", {"type": "text", "text": ""})
        events.append(self._delta({"type": "text_delta", "text": text}))
        return events

    def _tool_call(self, call: dict[str, Any]) -> list[Event]:
        position = call.get("index", 0)
        if not isinstance(position, int):
            malformed("tool_calls.index")
        function = call.get("function") or {}
        events: list[Event] = []
        if position not in self._tool_blocks:
            call_id = call.get("id") or f"toolu_{self.id}_{position}"
            name = _str(function.get("name") or "")
            block = {"type": "tool_use", "id": _str(call_id), "name": name, "input": {}}
            events = self._open("tool_use", block)
            self._tool_blocks[position] = self._block
        elif self._tool_blocks[position] != self._block:
            malformed("tool call arguments after its block was closed")
        arguments = function.get("arguments")
        if arguments:
            piece = {"type": "input_json_delta", "partial_json": _str(arguments)}
            events.append(self._delta(piece))
        return events

    def _close(self) -> list[Event]:
        self.done = True
        events = self._stop_block()
        usage = self.usage or {"output_tokens": 0}
        stop_reason = STOP_REASONS.get(self.finish_reason or "stop", "end_turn")
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events
