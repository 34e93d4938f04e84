"""OpenAI answers: chat completions, legacy completions, Responses and embeddings (pure).

Each builder returns the JSON body, or for a stream the SSE frames and the index of the
frame before which `disconnect-mid-stream` drops the connection.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson

from meterline.mock_provider._embeddings import DEFAULT_DIMENSIONS, MAX_DIMENSIONS, embed
from meterline.mock_provider._shared import Plan, sse, text_pieces, usage_of

Frames = tuple[list[bytes], int]


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def chat(body: dict[str, Any], plan: Plan, model: str) -> bytes | Frames:
    usage = usage_of("chat", plan)
    tool_call = None
    if plan.tool_name is not None:
        tool_call = {
            "id": "call_" + plan.digest.hex()[:12],
            "type": "function",
            "function": {"name": plan.tool_name, "arguments": plan.tool_arguments},
        }
    completion_id = "chatcmpl-mock-" + plan.digest.hex()[:16]
    created = int(time.time())
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": plan.text or None}
        if tool_call:
            message["tool_calls"] = [tool_call]
        return orjson.dumps(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": plan.finish}],
                "usage": usage,
            }
        )
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
    head["model"] = model

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return sse({**head, "choices": [choice]})

    frames = [chunk({"role": "assistant", "content": ""})]
    frames.extend(chunk({"content": piece}) for piece in text_pieces(plan))
    if tool_call:
        frames.append(chunk({"tool_calls": [{"index": 0, **tool_call}]}))
    frames.append(chunk({}, plan.finish))
    if _include_usage(body):
        frames.append(sse({**head, "choices": [], "usage": usage}))
    frames.append(b"data: [DONE]\n\n")
    return frames, 2


def completions(body: dict[str, Any], plans: list[Plan], model: str) -> bytes | Frames:
    """Legacy `/v1/completions`: one choice per prompt (a list prompt gives several)."""
    usage = {
        key: sum(usage_of("completions", plan)[key] for plan in plans)
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    completion_id = "cmpl-mock-" + plans[0].digest.hex()[:16]
    head = {"id": completion_id, "object": "text_completion", "created": int(time.time())}
    head["model"] = model
    if not body.get("stream"):
        choices = [
            {"text": plan.text, "index": i, "logprobs": None, "finish_reason": plan.finish}
            for i, plan in enumerate(plans)
        ]
        return orjson.dumps({**head, "choices": choices, "usage": usage})

    def chunk(index: int, text: str, finish_reason: str | None = None) -> bytes:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}
        return sse({**head, "choices": [choice]})

    frames = []
    for index, plan in enumerate(plans):
        frames.extend(chunk(index, piece) for piece in text_pieces(plan))
        frames.append(chunk(index, "", plan.finish))
    if _include_usage(body):
        frames.append(sse({**head, "choices": [], "usage": usage}))
    frames.append(b"data: [DONE]\n\n")
    return frames, 1


def embeddings(body: dict[str, Any], model: str) -> bytes:
    value = body.get("input")
    asked = body.get("dimensions")
    dimensions = asked if isinstance(asked, int) and 0 < asked <= MAX_DIMENSIONS else 0
    dimensions = dimensions or DEFAULT_DIMENSIONS
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    data = []
    tokens = 0
    for index, item in enumerate(items):
        if isinstance(item, str):
            tokens += math.ceil(len(item) / 4)
        elif isinstance(item, list):
            tokens += len(item)
        else:
            tokens += 1
        vector = embed(item, dimensions)
        data.append({"object": "embedding", "index": index, "embedding": vector})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


def responses(body: dict[str, Any], plan: Plan, model: str) -> bytes | Frames:
    """`/v1/responses`: a message with one output_text part, or a function_call item."""
    hex_ = plan.digest.hex()
    incomplete = plan.finish == "length"
    if plan.tool_name is not None:
        item: dict[str, Any] = {
            "type": "function_call",
            "id": "fc_mock_" + hex_[:16],
            "call_id": "call_" + hex_[:12],
            "name": plan.tool_name,
            "arguments": plan.tool_arguments,
            "status": "completed",
        }
    else:
        part = {"type": "output_text", "text": plan.text, "annotations": [], "logprobs": []}
        item = {
            "type": "message",
            "id": "msg_mock_" + hex_[:16],
            "role": "assistant",
            "status": "incomplete" if incomplete else "completed",
            "content": [part],
        }
    tools = body.get("tools")
    response: dict[str, Any] = {
        "id": "resp_mock_" + hex_[:24],
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "output": [item],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature"),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools if isinstance(tools, list) else [],
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": usage_of("responses", plan),
        "user": None,
    }
    if not body.get("stream"):
        return orjson.dumps(response)
    events: list[dict[str, Any]] = []
    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    pending["incomplete_details"] = None
    events.append({"type": "response.created", "response": pending})
    events.append({"type": "response.in_progress", "response": pending})
    ids = {"item_id": item["id"], "output_index": 0}
    drop_at = len(events) + 2
    if plan.tool_name is not None:
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "arguments": "", "status": "in_progress"},
            }
        )
        arguments = plan.tool_arguments or ""
        half = len(arguments) // 2
        for delta in (arguments[:half], arguments[half:]):
            events.append({"type": "response.function_call_arguments.delta", **ids, "delta": delta})
        events.append(
            {"type": "response.function_call_arguments.done", **ids, "arguments": arguments}
        )
        drop_at = 3
    else:
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "status": "in_progress", "content": []},
            }
        )
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        at = {**ids, "content_index": 0}
        events.append({"type": "response.content_part.added", **at, "part": empty})
        drop_at = len(events) + 1
        for piece in text_pieces(plan):
            events.append(
                {"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []}
            )
        events.append(
            {"type": "response.output_text.done", **at, "text": plan.text, "logprobs": []}
        )
        events.append({"type": "response.content_part.done", **at, "part": part})
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    final = "response.incomplete" if incomplete else "response.completed"
    events.append({"type": final, "response": response})
    frames = [sse({**event, "sequence_number": n}, named=True) for n, event in enumerate(events)]
    return frames, drop_at
