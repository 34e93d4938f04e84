"""Messages, Responses, completions and Azure paths answer in shapes the official SDK types accept.

Driven through httpx's ASGI transport (no sockets); usage is predicted with the mock's helpers.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from meterline.mock_provider import create_app, input_tokens_for, plan_for, usage_for

MESSAGES = [{"role": "user", "content": "hello mock!"}]
TOOL = {"name": "lookup", "description": "d", "input_schema": {"type": "object"}}


async def _post(path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        return await client.post(path, json=body, headers=headers)


def _events(text: str) -> list[dict[str, Any]]:
    """SSE frames with an `event:` line: checks the name matches the data's type."""
    events = []
    for frame in text.strip().split("\n\n"):
        name, data = frame.split("\n")
        event = orjson.loads(data.removeprefix("data: "))
        assert name == "event: " + event["type"]
        events.append(event)
    return events


async def test_messages_text_usage_and_same_reply_as_chat() -> None:
    anthropic_types = pytest.importorskip("anthropic.types")  # a test dependency
    body = {"model": "claude-x", "max_tokens": 100, "system": "be brief", "messages": MESSAGES}
    message = anthropic_types.Message.model_validate((await _post("/v1/messages", body)).json())
    assert message.model == "claude-x" and message.stop_reason == "end_turn"
    assert message.usage.model_dump(include={"input_tokens", "output_tokens"}) == {
        "input_tokens": usage_for("messages", body)["input_tokens"],
        "output_tokens": usage_for("messages", body)["output_tokens"],
    }
    assert message.usage.input_tokens == 3 + 3 + 2 + 3  # system message + "hello mock!"
    chat_body = {"model": "m", "messages": [{"role": "system", "content": "be brief"}, *MESSAGES]}
    chat = ChatCompletion.model_validate((await _post("/v1/chat/completions", chat_body)).json())
    assert message.content[0].text == chat.choices[0].message.content  # same conversation
    capped = (await _post("/v1/messages", {**body, "max_tokens": 2})).json()
    assert capped["stop_reason"] == "max_tokens" and capped["usage"]["output_tokens"] == 2
    count = await _post("/v1/messages/count_tokens", {"model": "c", "messages": MESSAGES})
    assert count.json() == {"input_tokens": input_tokens_for("messages", {"messages": MESSAGES})}


async def test_messages_cache_tokens_by_field_and_by_cache_control() -> None:
    body = {
        "model": "c",
        "max_tokens": 50,
        "messages": MESSAGES,
        "mock_cached_tokens": 2,
        "mock_cache_write_tokens": 1,
    }
    usage = (await _post("/v1/messages", body)).json()["usage"]
    assert usage == usage_for("messages", body)
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (3, 2)
    assert usage["cache_creation_input_tokens"] == 1
    system = [{"type": "text", "text": "x" * 40, "cache_control": {"type": "ephemeral"}}]
    marked = {"model": "c", "max_tokens": 50, "system": system, "messages": MESSAGES}
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        first = (await client.post("/v1/messages", json=marked)).json()["usage"]
        second = (await client.post("/v1/messages", json=marked)).json()["usage"]
        other = (await client.post("/d/west/v1/messages", json=marked)).json()["usage"]
    assert first == usage_for("messages", marked) == other  # per deployment
    assert second == usage_for("messages", marked, prompt_cached=True)
    assert first["cache_creation_input_tokens"] == 13 == second["cache_read_input_tokens"]
    assert first["input_tokens"] == second["input_tokens"] == 6


async def test_messages_tool_use_and_stream_events() -> None:
    anthropic_types = pytest.importorskip("anthropic.types")  # a test dependency
    body = {"model": "c", "max_tokens": 50, "messages": MESSAGES, "tools": [TOOL]}
    message = anthropic_types.Message.model_validate((await _post("/v1/messages", body)).json())
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "lookup" and message.stop_reason == "tool_use"
    assert block.input == {"q": plan_for("messages", body).digest.hex()[:8]}
    adapter: TypeAdapter[Any] = TypeAdapter(anthropic_types.RawMessageStreamEvent)
    for stream_body, delta_type in (
        ({**body, "stream": True}, "input_json_delta"),
        ({**body, "tools": None, "stream": True}, "text_delta"),
    ):
        events = _events((await _post("/v1/messages", stream_body)).text)
        for event in events:
            if event["type"] != "ping":  # the SDK reads ping apart from the event union
                adapter.validate_python(event)
        types = [e["type"] for e in events]
        assert types[:3] == ["message_start", "content_block_start", "ping"]
        assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
        deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
        assert deltas and {d["type"] for d in deltas} == {delta_type}
        assert events[-2]["usage"] == usage_for("messages", stream_body)
    joined = "".join(d["text"] for d in deltas)
    assert joined == plan_for("messages", stream_body).text


async def test_messages_errors_are_anthropic_shaped() -> None:
    missing = await _post("/v1/messages", {"model": "c", "messages": MESSAGES})
    assert missing.status_code == 400
    assert missing.json()["type"] == "error"
    assert missing.json()["error"]["type"] == "invalid_request_error"
    limited = await _post("/v1/messages", {"model": "mock-fail-429", "max_tokens": 5})
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert (await _post("/v1/messages", {"model": "c"}, **{"x-api-key": "k"})).status_code == 400


async def test_responses_message_function_call_and_stream() -> None:
    body = {
        "model": "gpt-x",
        "input": "hello mock!",
        "instructions": "be brief",
        "previous_response_id": "resp_earlier",
        "mock_cached_tokens": 4,
        "mock_reasoning_tokens": 5,
    }
    response = Response.model_validate((await _post("/v1/responses", body)).json())
    assert response.previous_response_id == "resp_earlier" and response.status == "completed"
    assert response.output_text == plan_for("responses", body).text
    assert response.usage is not None
    assert response.usage.model_dump(exclude_none=True) == usage_for("responses", body)
    assert response.usage.input_tokens_details.cached_tokens == 4
    assert response.usage.output_tokens_details.reasoning_tokens == 5
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    called = Response.model_validate(
        (await _post("/v1/responses", {**body, "tools": tools})).json()
    )
    assert called.output[0].type == "function_call" and called.output[0].name == "lookup"
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    for stream_body in ({**body, "stream": True}, {**body, "tools": tools, "stream": True}):
        events = _events((await _post("/v1/responses", stream_body)).text)
        parsed = [adapter.validate_python(event) for event in events]
        assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
        assert [e.type for e in parsed[:3]] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
        ]
        assert parsed[-1].type == "response.completed"
        assert parsed[-1].response.usage.model_dump(exclude_none=True) == usage_for(
            "responses", stream_body
        )
    text = "".join(e.delta for e in parsed if e.type == "response.output_text.delta")
    assert text == "" and parsed[-2].item.type == "function_call"
    capped = (await _post("/v1/responses", {**body, "max_output_tokens": 1})).json()
    assert capped["status"] == "incomplete"
    assert capped["incomplete_details"] == {"reason": "max_output_tokens"}


async def test_legacy_completions_and_stream_usage() -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "hello mock!"}
    completion = Completion.model_validate((await _post("/v1/completions", body)).json())
    assert completion.choices[0].text == plan_for("completions", body).text
    assert completion.usage is not None
    assert completion.usage.model_dump(exclude_none=True) == usage_for("completions", body)
    assert completion.usage.prompt_tokens == 6
    many = (await _post("/v1/completions", {**body, "prompt": ["a", "b"]})).json()
    assert [c["index"] for c in many["choices"]] == [0, 1]
    assert many["usage"] == usage_for("completions", {**body, "prompt": ["a", "b"]})
    stream = await _post(
        "/v1/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    frames = stream.text.strip().split("\n\n")
    assert frames[-1] == "data: [DONE]"
    chunks = [orjson.loads(f[6:]) for f in frames[:-1]]
    assert (
        "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
        == completion.choices[0].text
    )
    last = Completion.model_validate(chunks[-1])  # mid-stream chunks have finish_reason null
    assert last.usage is not None and last.usage.prompt_tokens == 6
    assert Completion.model_validate(chunks[-2]).choices[0].finish_reason == "stop"


async def test_azure_deployment_paths() -> None:
    base = "/openai/deployments/gpt4-east"
    body = {"messages": MESSAGES}
    chat = await _post(f"{base}/chat/completions?api-version=2024-10-21", body, **{"api-key": "k"})
    assert chat.status_code == 200 and chat.json()["model"] == "gpt4-east"
    missing = await _post(f"{base}/chat/completions", body)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_api_version"
    embedded = await _post(f"{base}/embeddings?api-version=1", {"input": "abcd"})
    assert embedded.json()["usage"]["prompt_tokens"] == 1
    completed = await _post(f"{base}/completions?api-version=1", {"prompt": "hi"})
    assert completed.json()["object"] == "text_completion"
