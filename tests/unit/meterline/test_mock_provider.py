"""The mock provider is deterministic and OpenAI-shaped (httpx ASGI transport, no sockets)."""

from __future__ import annotations

import httpx
import orjson

from meterline.mock_provider import create_app

MESSAGES = [{"role": "user", "content": "hello mock!"}]  # 11 chars -> 3 + 3 tokens


async def _post(body: dict, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        return await client.post("/v1/chat/completions", json=body, headers=headers)


async def test_chat_is_deterministic_and_echoes_the_model() -> None:
    first = (await _post({"model": "any-model", "messages": MESSAGES})).json()
    second = (await _post({"model": "any-model", "messages": MESSAGES})).json()
    assert first["choices"] == second["choices"] and first["usage"] == second["usage"]
    assert first["model"] == "any-model" and first["usage"]["prompt_tokens"] == 6
    content = first["choices"][0]["message"]["content"]
    assert first["usage"]["completion_tokens"] == len(content.split())
    capped = (await _post({"model": "m", "messages": MESSAGES, "max_tokens": 2})).json()
    assert capped["usage"]["completion_tokens"] == 2
    assert capped["choices"][0]["finish_reason"] == "length"


async def test_stream_ends_with_usage_only_when_asked() -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    plain = (await _post(body)).text
    with_usage = (
        await _post({**body, "stream_options": {"include_usage": True}, "mock_cached_tokens": 4})
    ).text
    chunks = [
        orjson.loads(line[6:]) for line in with_usage.split("\n\n") if line.startswith("data: {")
    ]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 6
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    assert '"usage"' not in plain and plain.endswith("data: [DONE]\n\n")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert len(text.split()) == chunks[-1]["usage"]["completion_tokens"]


async def test_failures_are_injected_by_model_name_or_header() -> None:
    limited = await _post({"model": "mock-fail-429-x", "messages": MESSAGES})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert (
        await _post({"model": "m", "messages": MESSAGES}, **{"x-mock-fail": "500"})
    ).status_code == 500
    assert (await _post({"model": "m"} | {"messages": "x"})).status_code == 400


async def test_embeddings_and_models() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        result = (
            await client.post("/v1/embeddings", json={"model": "e", "input": ["abcdefgh", "x"]})
        ).json()
        assert result["usage"]["prompt_tokens"] == 3 and len(result["data"]) == 2
        models = (await client.get("/v1/models")).json()
        assert "mock-gpt" in {m["id"] for m in models["data"]}
        assert (await client.get("/nope")).status_code == 404
