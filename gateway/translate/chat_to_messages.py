"""OpenAI chat completions -> Anthropic Messages: the client speaks chat, the upstream Messages.

Three pieces, all pure (plain dicts in, plain dicts out, no I/O, no clock):

- `chat_request_to_messages(body)`: a chat-completions request body -> a Messages request body.
  Raises `InvalidRequest` (with `param`) for what cannot be translated faithfully.
- `messages_response_to_chat(message, created=...)`: a Messages response -> a `chat.completion`.
- `ChatChunksFromMessagesStream`: Anthropic SSE events in, `chat.completion.chunk` dicts out.

Anything malformed coming back from the upstream raises `UpstreamUnavailable` ("upstream sent a
malformed answer"), never anything else.

Decisions (kept here so the proxy and the docs can point at one place):

- `system` and `developer` messages, wherever they sit, are hoisted in order into `system` (one
  string when there is a single text, else a list of text blocks). Messages has no mid-conversation
  system turn.
- Consecutive messages of the same Anthropic role are merged (Anthropic requires alternation);
  `tool` messages become `tool_result` blocks of one user turn, placed before any user text.
- An assistant turn with no text and no tool calls is dropped (Anthropic rejects empty content).
- A tool call's `arguments` that is not a JSON object becomes `input: {}` (see
  `_common.arguments_to_input`).
- `max_completion_tokens`, else `max_tokens`, else `DEFAULT_MAX_TOKENS` (Messages requires one).
- `temperature` and `top_p` are dropped by default: the current Messages API (anthropic SDK 2.x)
  has no sampling parameters, and Anthropic rejects unknown fields. `keep_sampling=True` sends
  them for upstreams that still take them (older models, Anthropic-compatible servers), with
  `temperature` above 1 (chat allows up to 2, Messages took up to 1) clamped to 1. They are
  type-checked either way.
- `parallel_tool_calls: false` -> `tool_choice.disable_parallel_tool_use: true` (with
  `{"type": "auto"}` when the client gave no tool_choice). `tool_choice` without `tools` is dropped.
- Rejected (400 naming the field): `n` > 1, `logprobs`/`top_logprobs`, `response_format` other
  than `text`, audio output, legacy `functions`/`function_call` and `function` messages,
  non-function tools, message parts other than text/image/PDF file, images that are neither
  http(s) nor base64 data URLs of jpeg/png/gif/webp.
- Dropped silently (hints with no Messages equivalent): frequency/presence penalties, logit_bias,
  seed, service_tier, store, metadata, prediction, reasoning_effort, verbosity, prompt cache
  keys, safety_identifier, web_search_options, stream_options (the stream translator decides
  whether to emit the usage chunk), message `name`, image `detail`.
"""

from __future__ import annotations

from typing import Any

from gateway.translate._common import (
    SHAPE_ERRORS,
    arguments_to_input,
    dumps,
    invalid,
    malformed,
    split_data_url,
    upstream_error,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "ChatChunksFromMessagesStream",
    "chat_request_to_messages",
    "messages_response_to_chat",
]

DEFAULT_MAX_TOKENS = 4096
"""`max_tokens` sent to Anthropic when the chat request names none (Messages requires it)."""

ANTHROPIC_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

# Messages `stop_reason` -> chat `finish_reason`.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_REJECTED = {
    "functions": "legacy function calling is not supported for this model; use `tools`",
    "function_call": "legacy function calling is not supported for this model; use `tool_choice`",
    "audio": "audio output is not supported for this model",
}


# --------------------------------------------------------------------------- request


def chat_request_to_messages(
    body: dict[str, Any], *, keep_sampling: bool = False
) -> dict[str, Any]:
    """A chat-completions request body -> an Anthropic Messages request body.

    `keep_sampling` sends `temperature`/`top_p` (see the module docstring).

    `model` is carried as is (the caller substitutes the upstream model name).
    """
    if not isinstance(body, dict):
        invalid("body", "must be a JSON object")
    if not isinstance(body.get("model"), str):
        invalid("model", "must be a string")
    _reject_unfaithful(body)
    out: dict[str, Any] = {"model": body.get("model")}
    system, messages = _messages(body.get("messages"))
    out["messages"] = messages
    if system:
        out["system"] = system[0]["text"] if len(system) == 1 else system
    out["max_tokens"] = _max_tokens(body)
    _sampling(body, out, keep_sampling)
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            invalid("user", "must be a string")
        out["metadata"] = {"user_id": user}
    stream = body.get("stream")
    if stream is not None:
        if not isinstance(stream, bool):
            invalid("stream", "must be a boolean")
        out["stream"] = stream
    return out


def _reject_unfaithful(body: dict[str, Any]) -> None:
    for field, reason in _REJECTED.items():
        if body.get(field) is not None:
            invalid(field, reason)
    n = body.get("n")
    if n is not None and n != 1:
        invalid("n", "only n=1 is supported for this model")
    if body.get("logprobs") or body.get("top_logprobs"):
        param = "logprobs" if body.get("logprobs") else "top_logprobs"
        invalid(param, "log probabilities are not available for this model")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        invalid("response_format", "only response_format type 'text' is supported for this model")
    modalities = body.get("modalities")
    if modalities is not None and (
        not isinstance(modalities, list) or any(m != "text" for m in modalities)
    ):
        invalid("modalities", "only the 'text' modality is supported for this model")


def _max_tokens(body: dict[str, Any]) -> int:
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            invalid(field, "must be a positive integer")
        return value
    return DEFAULT_MAX_TOKENS


def _number(body: dict[str, Any], field: str) -> float | int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        invalid(field, "must be a number")
    return value


def _sampling(body: dict[str, Any], out: dict[str, Any], keep: bool) -> None:
    temperature = _number(body, "temperature")
    if temperature is not None:
        if temperature < 0:
            invalid("temperature", "must be >= 0")
        if keep:
            out["temperature"] = min(temperature, 1)
    top_p = _number(body, "top_p")
    if top_p is not None and keep:
        out["top_p"] = top_p
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            invalid("stop", "must be a string or a list of strings")
        stops = [s for s in stops if s.strip()]
        if stops:
            out["stop_sequences"] = stops


# --------------------------------------------------------------------------- messages


def _messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """-> (system text blocks, alternating Anthropic messages)."""
    if not isinstance(messages, list) or not messages:
        invalid("messages", "must be a non-empty array")
    system: list[dict[str, Any]] = []
    turns: list[tuple[str, list[dict[str, Any]] | str]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            invalid(where, "must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), f"{where}.content"))
        elif role == "user":
            turns.append(("user", _user_content(message.get("content"), f"{where}.content")))
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
            if blocks:
                turns.append(("assistant", blocks))
        elif role == "tool":
            turns.append(("user", [_tool_result(message, where)]))
        elif role == "function":
            invalid(f"{where}.role", "legacy function messages are not supported; use tool")
        else:
            invalid(f"{where}.role", f"unknown role {role!r}")
    if not turns:
        invalid("messages", "must contain at least one user or assistant message")
    return system, _merge(turns)


def _merge(turns: list[tuple[str, list[dict[str, Any]] | str]]) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for role, content in turns:
        if merged and merged[-1]["role"] == role:
            previous = merged[-1]
            blocks = _as_blocks(previous["content"]) + _as_blocks(content)
            # tool results must open a user turn: move them ahead of any text merged before them
            results = [b for b in blocks if b.get("type") == "tool_result"]
            if results and role == "user":
                blocks = results + [b for b in blocks if b.get("type") != "tool_result"]
            previous["content"] = blocks
        else:
            merged.append({"role": role, "content": content})
    return merged


def _as_blocks(content: list[dict[str, Any]] | str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        invalid(where, "must be a string or an array of text parts")
    blocks = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            invalid(f"{where}[{j}]", "only text parts are allowed here")
        blocks.append(_text_block(part, f"{where}[{j}]"))
    return [b for b in blocks if b["text"]]


def _text_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    text = part.get("text")
    if not isinstance(text, str):
        invalid(f"{where}.text", "must be a string")
    block: dict[str, Any] = {"type": "text", "text": text}
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _user_content(content: Any, where: str) -> list[dict[str, Any]] | str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        invalid(where, "must be a string or a non-empty array of content parts")
    blocks = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            invalid(at, "must be an object")
        kind = part.get("type")
        if kind == "text":
            blocks.append(_text_block(part, at))
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), f"{at}.image_url"))
        elif kind == "file":
            blocks.append(_document_block(part.get("file"), f"{at}.file"))
        else:
            invalid(f"{at}.type", f"content part {kind!r} is not supported for this model")
    return blocks


def _image_block(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        invalid(f"{where}.url", "must be a string")
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    data_url = split_data_url(url)
    if data_url is None or data_url[0] not in ANTHROPIC_IMAGE_TYPES:
        invalid(f"{where}.url", "must be an http(s) URL or a base64 data URL of jpeg/png/gif/webp")
    media_type, data = data_url
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document_block(file: Any, where: str) -> dict[str, Any]:
    data = file.get("file_data") if isinstance(file, dict) else None
    data_url = split_data_url(data) if isinstance(data, str) else None
    if data_url is None or data_url[0] != "application/pdf":
        invalid(f"{where}.file_data", "only base64 PDF file_data is supported for this model")
    source = {"type": "base64", "media_type": "application/pdf", "data": data_url[1]}
    return {"type": "document", "source": source}


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for j, part in enumerate(content):
            at = f"{where}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                block = _text_block(part, at)
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                block = {"type": "text", "text": part["refusal"]}
            else:
                invalid(at, "assistant content parts must be text or refusal")
            if block["text"]:
                blocks.append(block)
    elif content is not None:
        invalid(f"{where}.content", "must be a string, an array of parts or null")
    if message.get("function_call") is not None:
        invalid(f"{where}.function_call", "legacy function calling is not supported; use tools")
    tool_calls = message.get("tool_calls")
    if tool_calls is None:
        return blocks
    if not isinstance(tool_calls, list):
        invalid(f"{where}.tool_calls", "must be an array")
    for j, call in enumerate(tool_calls):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            invalid(at, "must be a function tool call")
        call_id, name = call.get("id"), function.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            invalid(at, "needs a string id and function.name")
        block = {"type": "tool_use", "id": call_id, "name": name}
        blocks.append(block | {"input": arguments_to_input(function.get("arguments"))})
    return blocks


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        invalid(f"{where}.tool_call_id", "must be a string")
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        result["content"] = content
    else:
        result["content"] = _text_blocks(content, f"{where}.content")
    return result


# --------------------------------------------------------------------------- tools


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        invalid("tools", "must be an array")
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function":
            invalid(f"tools[{i}].type", "only function tools are supported for this model")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            invalid(f"tools[{i}].function.name", "must be a string")
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        elif not isinstance(parameters, dict):
            invalid(f"tools[{i}].function.parameters", "must be a JSON schema object")
        converted: dict[str, Any] = {"name": function["name"], "input_schema": parameters}
        if isinstance(function.get("description"), str):
            converted["description"] = function["description"]
        if isinstance(function.get("strict"), bool):
            converted["strict"] = function["strict"]
        out.append(converted)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        converted: dict[str, Any] = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        converted = {"type": "any"}
    elif (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance(choice.get("function"), dict)
        and isinstance(choice["function"].get("name"), str)
    ):
        converted = {"type": "tool", "name": choice["function"]["name"]}
    else:
        invalid("tool_choice", "must be auto, none, required or a function tool choice")
    if parallel is False:
        converted["disable_parallel_tool_use"] = True
    elif choice is None:
        return None
    return converted


# --------------------------------------------------------------------------- response


def messages_usage_to_chat(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage -> chat usage. Chat has no field for cache writes: they count as prompt
    tokens; cache reads also appear as `prompt_tokens_details.cached_tokens`."""
    read = usage.get("cache_read_input_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    prompt = usage.get("input_tokens", 0) + read + written
    completion = usage.get("output_tokens", 0)
    if not all(isinstance(v, int) and v >= 0 for v in (prompt, completion, read, written)):
        malformed("usage")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read},
    }


def messages_response_to_chat(message: dict[str, Any], *, created: int) -> dict[str, Any]:
    """An Anthropic Message (non-streaming answer) -> a `chat.completion`.

    `created` is the Unix time to report (the caller's clock; this module reads none).
    """
    try:
        return _response(message, created)
    except SHAPE_ERRORS:
        malformed()


def _response(message: dict[str, Any], created: int) -> dict[str, Any]:
    if message.get("type") != "message" or not isinstance(message["content"], list):
        malformed("not a message")
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message["content"]:
        kind = block["type"]
        if kind == "text":
            texts.append(_str(block["text"]))
        elif kind == "tool_use":
            if not isinstance(block["input"], dict):
                malformed("tool_use.input")
            function = {"name": _str(block["name"]), "arguments": dumps(block["input"])}
            tool_calls.append({"id": _str(block["id"]), "type": "function", "function": function})
        # thinking, redacted_thinking and server tool blocks have no chat equivalent
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    reply["refusal"] = None
    stop_reason = message.get("stop_reason")
    return {
        "id": _str(message["id"]),
        "object": "chat.completion",
        "created": created,
        "model": _str(message["model"]),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": FINISH_REASONS.get(stop_reason, "stop"),
                "logprobs": None,
            }
        ],
        "usage": messages_usage_to_chat(message["usage"]),
    }


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


# --------------------------------------------------------------------------- stream


class ChatChunksFromMessagesStream:
    """Anthropic Messages SSE events -> `chat.completion.chunk` dicts, one event at a time.

        stream = ChatChunksFromMessagesStream(created=int(time.time()))
        for name, payload in upstream_events:          # ping events may be fed too
            for chunk in stream.feed(name, payload):
                send(b"data: " + orjson.dumps(chunk) + b"\\n\\n")
        send(b"data: [DONE]\\n\\n")                      # the caller writes [DONE]
        meter(stream.usage)                            # Anthropic usage, cache writes included

    **Parameters:**
    * **created** - Unix time reported in every chunk.
    * **include_usage** - emit the final `choices: []` usage chunk (chat's
      `stream_options.include_usage`); `usage` is collected either way.
    * **model** - model reported in chunks (default: the one in `message_start`).

    `feed` raises `UpstreamUnavailable` on an `error` event (with the upstream's message) and on
    any malformed event. Events after `message_stop` and unknown event types are ignored.
    `done` tells whether `message_stop` arrived: when the upstream ends without it, the answer is
    truncated and the caller should treat it as an upstream failure.
    """

    def __init__(self, *, created: int, include_usage: bool = True, model: str | None = None):
        self.created = created
        self.include_usage = include_usage
        self.model = model
        self.id: str | None = None
        self.usage: dict[str, int] = {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        """Anthropic usage as last reported (message_start, then message_delta updates)."""
        self.stop_reason: str | None = None
        self.finish_reason: str | None = None
        self.done = False
        self._tool_index: dict[int, int] = {}  # content block index -> chat tool_calls index

    def feed(self, event: str | None, payload: dict[str, Any]) -> list[dict[str, Any]]:
        if self.done:
            return []
        try:
            kind = payload.get("type") or event
            if kind == "error":
                error = payload.get("error")
                message = error.get("message") if isinstance(error, dict) else None
                upstream_error(message)
            if kind == "message_start":
                return self._start(payload["message"])
            if kind not in _STREAM_EVENTS:
                return []  # ping, and event types added after this was written
            if self.id is None:
                malformed(f"{kind} before message_start")
            return _STREAM_EVENTS[kind](self, payload)
        except SHAPE_ERRORS:
            malformed()

    def chat_usage(self) -> dict[str, Any]:
        """The usage seen so far, in chat's shape (what the final usage chunk carries)."""
        return messages_usage_to_chat(self.usage)

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return self._envelope([choice])

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def _update_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for field in self.usage:
            value = usage.get(field)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                malformed("usage")
            self.usage[field] = value

    def _start(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        if self.id is not None:
            malformed("second message_start")
        self.id = _str(message["id"])
        if self.model is None:
            self.model = _str(message["model"])
        self._update_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        index, block = payload["index"], payload["content_block"]
        kind = block["type"]
        if kind == "text":
            text = _str(block.get("text", ""))
            return [self._chunk({"content": text})] if text else []
        if kind != "tool_use":
            return []  # thinking and server tool blocks have no chat equivalent
        if not isinstance(index, int) or index in self._tool_index:
            malformed("content_block_start.index")
        position = self._tool_index[index] = len(self._tool_index)
        function = {"name": _str(block["name"]), "arguments": ""}
        call = {"index": position, "id": _str(block["id"]), "type": "function"}
        chunks = [self._chunk({"tool_calls": [call | {"function": function}]})]
        initial = block.get("input")
        if isinstance(initial, dict) and initial:  # not sent by Anthropic today; be safe
            chunks.append(self._arguments(position, dumps(initial)))
        return chunks

    def _arguments(self, position: int, piece: str) -> dict[str, Any]:
        return self._chunk({"tool_calls": [{"index": position, "function": {"arguments": piece}}]})

    def _block_delta(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        delta = payload["delta"]
        kind = delta["type"]
        if kind == "text_delta":
            text = _str(delta["text"])
            return [self._chunk({"content": text})] if text else []
        if kind == "input_json_delta":
            position = self._tool_index.get(payload["index"])
            if position is None:
                malformed("input_json_delta outside a tool_use block")
            piece = _str(delta["partial_json"])
            return [self._arguments(position, piece)] if piece else []
        return []  # thinking_delta, signature_delta, citations_delta

    def _message_delta(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        self._update_usage(payload.get("usage"))
        stop_reason = payload["delta"].get("stop_reason")
        if stop_reason is None or self.finish_reason is not None:
            return []
        self.stop_reason = _str(stop_reason)
        self.finish_reason = FINISH_REASONS.get(stop_reason, "stop")
        return [self._chunk({}, self.finish_reason)]

    def _message_stop(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        self.done = True
        chunks = []
        if self.finish_reason is None:  # no stop_reason was ever sent: close the choice anyway
            self.finish_reason = "stop"
            chunks.append(self._chunk({}, self.finish_reason))
        if self.include_usage:
            chunks.append(self._envelope([]) | {"usage": self.chat_usage()})
        return chunks


_STREAM_EVENTS = {
    "content_block_start": ChatChunksFromMessagesStream._block_start,
    "content_block_delta": ChatChunksFromMessagesStream._block_delta,
    "content_block_stop": lambda self, payload: [],
    "message_delta": ChatChunksFromMessagesStream._message_delta,
    "message_stop": ChatChunksFromMessagesStream._message_stop,
}
