"""The mock provider plays the simulated agent's tool calls (httpx ASGI, no sockets)."""

from __future__ import annotations

import httpx

from meterline.mock_provider import create_app

TOOLS = [{"type": "function", "function": {"name": "run_tests"}}]


async def _call(messages: list[dict[str, str]], **extra: object) -> dict:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        body = {"model": "m", "messages": messages, "tools": TOOLS, **extra}
        response = await client.post("/v1/chat/completions", json=body)
    return response.json()["choices"][0]["message"]["tool_calls"][0]["function"]


async def test_a_growing_conversation_repeats_the_call_it_is_told_to() -> None:
    short = [{"role": "user", "content": "fix it"}]
    longer = [*short, {"role": "user", "content": "again"}]
    hint = {"mock_tool_arguments": '{"path":"t.py"}'}
    assert await _call(short, **hint) == await _call(longer, **hint)
    assert (await _call(longer, **hint)) == {"name": "run_tests", "arguments": '{"path":"t.py"}'}
    # Without the hint, arguments follow the prompt, as before.
    assert (await _call(short))["arguments"] != (await _call(longer))["arguments"]
