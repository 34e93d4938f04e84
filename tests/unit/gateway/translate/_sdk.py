"""Checks of translated shapes against the official SDK types (tests only).

The `anthropic` SDK may be missing from an environment that was not set up from scratch; its
checks are then skipped (`test_sdk_available` shows it) while the `openai` ones always run.
"""

from __future__ import annotations

from typing import Any

from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat import completion_create_params as ccp
from pydantic import TypeAdapter

try:
    from anthropic.lib.streaming._messages import accumulate_event
    from anthropic.types import Message, RawMessageStreamEvent
    from anthropic.types import message_create_params as mcp
except ImportError:  # pragma: no cover - see the module docstring
    Message = None

HAVE_ANTHROPIC = Message is not None


def _drain(value: Any) -> Any:
    """pydantic validates `Iterable[...]` lazily: consume (and so validate) every level."""
    if isinstance(value, dict):
        return {k: _drain(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ValidatorIterator":
        return [_drain(v) for v in value]
    return value


def _exact(adapter: TypeAdapter[Any], body: dict[str, Any]) -> None:
    # TypedDict validation drops unknown keys, so equality also proves there were none, at any depth
    assert _drain(adapter.validate_python(body)) == body


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(kind: Any) -> TypeAdapter[Any]:
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def check_messages_request(body: dict[str, Any]) -> None:
    if not HAVE_ANTHROPIC:
        return
    kind = (
        mcp.MessageCreateParamsStreaming
        if body.get("stream")
        else mcp.MessageCreateParamsNonStreaming
    )
    assert set(body) <= kind.__required_keys__ | kind.__optional_keys__
    _exact(_adapter(kind), body)


def check_chat_request(body: dict[str, Any]) -> None:
    kind = (
        ccp.CompletionCreateParamsStreaming
        if body.get("stream")
        else ccp.CompletionCreateParamsNonStreaming
    )
    assert set(body) <= kind.__required_keys__ | kind.__optional_keys__
    _exact(_adapter(kind), body)


def check_message(message: dict[str, Any]) -> None:
    if HAVE_ANTHROPIC:
        Message.model_validate(message)


def check_chat_completion(completion: dict[str, Any]) -> ChatCompletion:
    return ChatCompletion.model_validate(completion)


def accumulate_chunks(chunks: list[dict[str, Any]]) -> ChatCompletion:
    """Each chunk validated, then folded by the openai SDK's own stream accumulator."""
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    return state.get_final_completion()


def accumulate_events(events: list[tuple[str, dict[str, Any]]]) -> Any:
    """Each event validated, then folded by the anthropic SDK's own stream accumulator."""
    if not HAVE_ANTHROPIC:
        return None
    adapter = _adapter(RawMessageStreamEvent)
    snapshot, bufs = None, {}
    for name, payload in events:
        assert name == payload["type"]
        event = adapter.validate_python(payload)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
    return snapshot
