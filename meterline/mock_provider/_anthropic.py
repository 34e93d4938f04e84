"""Anthropic Messages answers: a Message, or its SSE event sequence (pure)."""

from __future__ import annotations

from typing import Any

import orjson

from meterline.mock_provider._shared import Plan, sse, text_pieces, usage_of

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def tool_input(plan: Plan) -> dict[str, Any]:
    try:
        value = orjson.loads(plan.tool_arguments or "{}")
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"arguments": plan.tool_arguments}


def messages(body: dict[str, Any], plan: Plan, model: str) -> bytes | tuple[list[bytes], int]:
    usage = usage_of("messages", plan)
    message_id = "msg_mock_" + plan.digest.hex()[:24]
    stop_reason = _STOP_REASONS[plan.finish]
    if plan.tool_name is not None:
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": "toolu_mock_" + plan.digest.hex()[:16],
            "name": plan.tool_name,
            "input": tool_input(plan),
        }
    else:
        block = {"type": "text", "text": plan.text}
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        return orjson.dumps(message)
    start_usage = {**usage, "output_tokens": 1}
    start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    if plan.tool_name is not None:
        events.append(
            {"type": "content_block_start", "index": 0, "content_block": {**block, "input": {}}}
        )
        events.append({"type": "ping"})
        partial = orjson.dumps(block["input"]).decode()
        half = len(partial) // 2
        for piece in (partial[:half], partial[half:]):
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append({"type": "content_block_delta", "index": 0, "delta": delta})
    else:
        events.append(
            {"type": "content_block_start", "index": 0, "content_block": {**block, "text": ""}}
        )
        events.append({"type": "ping"})
        for piece in text_pieces(plan):
            delta = {"type": "text_delta", "text": piece}
            events.append({"type": "content_block_delta", "index": 0, "delta": delta})
    events.append({"type": "content_block_stop", "index": 0})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": usage,  # cumulative, as the API sends it
        }
    )
    events.append({"type": "message_stop"})
    return [sse(event, named=True) for event in events], 4
