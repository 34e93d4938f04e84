"""proxy.py in-process: the gateway app over a runtime with in-memory collaborators.

The mock provider's ASGI app answers as upstream (`InProcessUpstream`), events land in a
`MemoryEmitter`, the views are `StaticViews` and the clock is a fake one: no broker, no
socket, each test in milliseconds. The same behaviour over real servers and a real broker
is tests/integration/gateway/test_gateway_proxy.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import create_app
from gateway.collaborators import MemoryControlPublisher, StaticViews
from gateway.emit import MemoryEmitter
from gateway.providers import InProcessUpstream
from gateway.runtime import GatewayRuntime
from meterline.mock_provider import create_app as create_mock_app
from meterline.settings import ProviderConfig, Settings
from schemas.events import RequestEvent

ADMIN = {"Authorization": "Bearer test-admin-token"}
CHAT = "/v1/chat/completions"
OK_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Gateway:
    """The app, its runtime's in-memory collaborators, and helpers to drive it."""

    def __init__(self, runtime: GatewayRuntime, http: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.http = http
        self.emitter: MemoryEmitter = runtime.emitter  # type: ignore[assignment]
        self.clock: FakeClock = runtime.clock  # type: ignore[assignment]

    async def create_key(self, **body: Any) -> dict[str, Any]:
        body.setdefault("org", "acme")
        response = await self.http.post("/admin/keys", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        return response.json()

    async def post(self, key: dict[str, Any] | None, path: str = CHAT, **kwargs: Any):
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers.setdefault("Authorization", f"Bearer {key['key']}")
        return await self.http.request(
            kwargs.pop("method", "POST"), path, headers=headers, **kwargs
        )

    def events(self) -> list[dict[str, Any]]:
        return self.emitter.values(self.runtime.requests_topic)

    def event_for(self, response: httpx.Response) -> dict[str, Any]:
        """The one RequestEvent of this response (exactly one, or the test fails)."""
        request_id = response.headers["x-request-id"]
        (event,) = [e for e in self.events() if e["request_id"] == request_id]
        RequestEvent.model_validate(event)
        return event


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = Settings(
        data_dir=tmp_path,
        admin_token="test-admin-token",
        gateway={"spans": False, "upstream_timeout_s": 0.05},
        providers=[
            ProviderConfig(
                name="mock",
                base_url="http://upstream/v1",
                price_provider="openai",
                models=["mock-gpt", "mock-gpt-mini", "mock-embed", "*"],
            )
        ],
    )
    runtime = GatewayRuntime(
        settings,
        emitter=MemoryEmitter(),
        upstream=InProcessUpstream(create_mock_app()),
        views=StaticViews,
        publisher=MemoryControlPublisher(),
        clock=FakeClock(),
    )
    app = create_app(settings, runtime=runtime)
    await runtime.start()
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5555))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield Gateway(runtime, http)
    finally:
        await runtime.aclose()


@pytest.fixture
async def key(gateway: Gateway) -> dict[str, Any]:
    return await gateway.create_key(org="acme", team="search", project="p1", user="ana")


async def test_non_streaming_chat_is_proxied_and_emits_one_event(gateway, key) -> None:
    response = await gateway.post(
        key,
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hello there, meter"}],
            "max_tokens": 30,
        },
        headers={"x-session-id": "sess-1", "x-meterline-app": "demo"},
    )
    assert response.status_code == 200, response.text
    completion = response.json()
    assert completion["model"] == "gpt-4o-mini"
    assert completion["usage"]["prompt_tokens"] == 8  # mock: ceil(18 / 4) + 3
    assert len(gateway.events()) == 1
    event = gateway.event_for(response)
    assert key["key"] not in str(event)
    assert gateway.emitter.events[0][1] == key["key_id"].encode()  # keyed by key_id
    assert (event["key_id"], event["org"], event["team"], event["project"], event["user"]) == (
        key["key_id"],
        "acme",
        "search",
        "p1",
        "ana",
    )
    assert (event["input_tokens"], event["output_tokens"]) == (
        8,
        completion["usage"]["completion_tokens"],
    )
    assert (event["model_requested"], event["model_used"], event["provider"]) == (
        "gpt-4o-mini",
        "gpt-4o-mini",
        "openai",
    )
    assert (event["status_code"], event["stream"], event["max_tokens_requested"]) == (
        200,
        False,
        30,
    )
    assert (event["session_id"], event["app"], event["client_ip"]) == ("sess-1", "demo", "10.0.0.7")
    assert event["endpoint"] == CHAT and event["finish_reason"] == "stop"
    assert event["response_chars"] == len(completion["choices"][0]["message"]["content"])
    assert event["prompt_chars"] == 18 and len(event["prompt_hash"]) == 64
    assert event["error_type"] is None


def _chunks(body: bytes) -> list[dict[str, Any]]:
    lines = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
    assert lines[-1] == b"[DONE]"
    return [orjson.loads(line) for line in lines[:-1]]


async def test_streaming_takes_usage_from_the_final_chunk_and_strips_it(gateway, key) -> None:
    response = await gateway.post(
        key,
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "stream"}],
            "stream": True,
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = _chunks(response.content)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text and all(c["choices"] for c in chunks)  # the usage-only chunk was stripped
    event = gateway.event_for(response)
    assert event["stream"] is True and event["status_code"] == 200
    assert event["output_tokens"] == len(text.split()) and event["input_tokens"] == 5
    assert event["response_chars"] == len(text) and event["ttft_ms"] is not None


async def test_streaming_keeps_usage_when_the_client_asks(gateway, key) -> None:
    response = await gateway.post(
        key, json={**OK_BODY, "stream": True, "stream_options": {"include_usage": True}}
    )
    usage = _chunks(response.content)[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    event = gateway.event_for(response)
    assert event["output_tokens"] == usage["usage"]["completion_tokens"]


async def test_mid_stream_disconnect_is_reported_in_band(gateway, key) -> None:
    response = await gateway.post(key, json={**OK_BODY, "model": "mock-disconnect", "stream": True})
    assert response.status_code == 200
    assert b'"upstream_unavailable"' in response.content
    event = gateway.event_for(response)
    assert (event["status_code"], event["error_type"]) == (502, "upstream_unavailable")


async def test_embeddings_are_proxied_and_metered(gateway, key) -> None:
    response = await gateway.post(
        key, "/v1/embeddings", json={"model": "mock-embed", "input": ["abcd", "ef"]}
    )
    assert response.status_code == 200
    assert len(response.json()["data"]) == 2
    event = gateway.event_for(response)
    assert (event["endpoint"], event["input_tokens"], event["output_tokens"]) == (
        "/v1/embeddings",
        2,
        0,
    )


async def test_models_lists_what_the_key_may_use(gateway) -> None:
    key = await gateway.create_key(models=["mock-gpt*"])
    response = await gateway.post(key, "/v1/models", method="GET")
    assert response.status_code == 200
    assert {m["id"] for m in response.json()["data"]} == {"mock-gpt", "mock-gpt-mini"}


@pytest.mark.parametrize(
    ("case", "status", "code", "param"),
    [
        ("bad json", 400, "invalid_request", None),
        ("missing model", 400, "missing_required_parameter", "model"),
        ("no key", 401, "invalid_api_key", None),
        ("bad key", 401, "invalid_api_key", None),
        ("model not allowed", 403, "model_not_allowed", "model"),
        ("upstream 429", 429, "rate_limit_exceeded", None),
        ("upstream 500", 502, "upstream_unavailable", None),
        ("upstream timeout", 504, "upstream_timeout", None),
        ("wrong method", 405, "method_not_allowed", None),
    ],
)
async def test_errors_are_openai_shaped_and_emitted(
    gateway, key, case, status, code, param
) -> None:
    request: dict[str, Any] = {
        "bad json": {"content": b"{oops", "headers": {"content-type": "application/json"}},
        "missing model": {"json": {"messages": [{"role": "user", "content": "x"}]}},
        "model not allowed": {"json": {**OK_BODY, "model": "claude-3"}},
        "upstream 429": {"json": {**OK_BODY, "model": "mock-fail-429"}},
        "upstream 500": {"json": {**OK_BODY, "model": "mock-fail-500"}},
        "upstream timeout": {"json": {**OK_BODY, "model": "mock-timeout"}},
        "wrong method": {"method": "GET"},
    }.get(case, {"json": OK_BODY})
    use_key: dict[str, Any] | None = key
    if case == "no key":
        use_key = None
    elif case == "bad key":
        use_key = {"key": "ml-not-a-real-key"}
    elif case == "model not allowed":
        use_key = await gateway.create_key(models=["gpt-*"])
    response = await gateway.post(use_key, **request)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code", "param"}
    assert error["code"] == code and error["param"] == param
    if case == "upstream 429":
        assert response.headers["retry-after"] == "7"
    assert len(gateway.events()) == 1
    event = gateway.event_for(response)
    assert event["status_code"] == status and event["error_type"]


async def test_key_rpm_limits_on_the_injected_clock(gateway) -> None:
    key = await gateway.create_key(rpm=1)
    first = await gateway.post(key, json=OK_BODY)
    second = await gateway.post(key, json=OK_BODY)
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert gateway.event_for(second)["enforcement"]["source"] == "key_rpm"
    gateway.clock.now += 60  # a minute later the bucket is full again
    assert (await gateway.post(key, json=OK_BODY)).status_code == 200
    assert [e["status_code"] for e in gateway.events()] == [200, 429, 200]


async def test_azure_deployments_get_their_path_version_and_api_key(
    tmp_path: Path, monkeypatch
) -> None:
    """A routing group served by an Azure OpenAI deployment: the upstream sees Azure's
    URL (deployment in the path, api-version in the query) and its `api-key` header."""
    monkeypatch.setenv("METERLINE_TEST_AZURE_KEY", "azure-secret")
    mock = create_mock_app()
    seen: list[dict[str, Any]] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        seen.append(
            {
                "path": scope["path"],
                "query": scope["query_string"],
                "headers": dict(scope["headers"]),
            }
        )
        await mock(scope, receive, send)

    settings = Settings(
        data_dir=tmp_path,
        admin_token="test-admin-token",
        gateway={"spans": False},
        providers=[
            ProviderConfig(
                name="azure-east",
                kind="azure",
                base_url="https://acme-east.openai.azure.com",
                api_version="2024-10-21",
                api_key_env="METERLINE_TEST_AZURE_KEY",
                price_provider="azure",
                models=[],
            )
        ],
        routing={
            "groups": [
                {
                    "name": "gpt-4o",
                    "deployments": [{"provider": "azure-east", "model": "prod-4o"}],
                }
            ]
        },
    )
    runtime = GatewayRuntime(
        settings,
        emitter=MemoryEmitter(),
        upstream=InProcessUpstream(recording),
        views=StaticViews,
        publisher=MemoryControlPublisher(),
        clock=FakeClock(),
    )
    app = create_app(settings, runtime=runtime)
    await runtime.start()
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5555))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            gateway = Gateway(runtime, http)
            key = await gateway.create_key()
            response = await gateway.post(key, json=OK_BODY)
    finally:
        await runtime.aclose()
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "prod-4o"  # Azure answers with the deployment
    (request,) = seen
    assert request["path"] == "/openai/deployments/prod-4o/chat/completions"
    assert request["query"] == b"api-version=2024-10-21"
    assert request["headers"][b"api-key"] == b"azure-secret"
    assert b"authorization" not in request["headers"]
    assert "azure-secret" not in str(gateway.events())
    event = gateway.event_for(response)
    assert (event["provider"], event["deployment"], event["upstream_api"]) == (
        "azure",
        "azure-east/prod-4o",
        "chat",
    )
    assert (event["model_requested"], event["model_used"]) == ("gpt-4o", "prod-4o")
