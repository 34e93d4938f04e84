"""The shared cache on a real redis-server (Debian's, started here on a free port and
stopped by its PID): what one gateway replica cached, another answers; an unreachable
Redis is a miss, never an error."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from gateway.app import create_app
from gateway.collaborators import MemoryControlPublisher, StaticViews
from gateway.emit import MemoryEmitter
from gateway.providers import InProcessUpstream
from gateway.runtime import GatewayRuntime
from meterline.mock_provider import create_app as create_mock_app
from meterline.settings import ProviderConfig, Settings
from tests.conftest import free_port

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer test-admin-token"}
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "shared?"}]}


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
            ).stdout.strip()
            != "PONG"
        ):
            assert time.monotonic() < deadline and server.poll() is None, "redis did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


async def _replica(stack: AsyncExitStack, tmp: Path, mock, redis_url: str) -> httpx.AsyncClient:
    settings = Settings(
        data_dir=tmp,
        admin_token="test-admin-token",
        gateway={"spans": False, "cache": {"mode": "exact", "redis_url": redis_url}},
        providers=[
            ProviderConfig(
                name="mock", base_url="http://upstream/v1", price_provider="openai", models=["*"]
            )
        ],
    )
    runtime = GatewayRuntime(
        settings,
        emitter=MemoryEmitter(),
        upstream=InProcessUpstream(mock),
        views=StaticViews,
        publisher=MemoryControlPublisher(),
    )
    await runtime.start()
    stack.push_async_callback(runtime.aclose)
    transport = httpx.ASGITransport(app=create_app(settings, runtime=runtime))
    return await stack.enter_async_context(
        httpx.AsyncClient(transport=transport, base_url="http://gateway")
    )


@pytest.fixture
async def replicas(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple]:
    mock = create_mock_app()
    async with AsyncExitStack() as stack:
        one = await _replica(stack, tmp_path / "a", mock, redis_url)
        two = await _replica(stack, tmp_path / "b", mock, redis_url)
        yield one, two, mock


async def _key(http: httpx.AsyncClient) -> dict[str, str]:
    response = await http.post("/admin/keys", json={"org": "acme"}, headers=ADMIN)
    return {"Authorization": f"Bearer {response.json()['key']}"}


async def test_a_replica_answers_what_another_cached(replicas, redis_url: str) -> None:
    one, two, mock = replicas
    filled = await one.post("/v1/chat/completions", json=BODY, headers=await _key(one))
    assert filled.headers["x-meterline-cache"] == "MISS"
    store = redis.asyncio.from_url(redis_url)
    deadline = time.monotonic() + 5  # the write to Redis is fire-and-forget
    while not await store.keys("meterline:cache:*"):
        assert time.monotonic() < deadline, "the entry never reached Redis"
        await asyncio.sleep(0.01)
    await store.aclose()
    shared = await two.post("/v1/chat/completions", json=BODY, headers=await _key(two))
    assert shared.headers["x-meterline-cache"] == "HIT"
    assert shared.content == filled.content
    assert mock.stats["default"]["/v1/chat/completions"] == 1


async def test_an_unreachable_redis_is_a_miss(tmp_path: Path) -> None:
    mock = create_mock_app()
    async with AsyncExitStack() as stack:
        http = await _replica(stack, tmp_path, mock, f"redis://127.0.0.1:{free_port()}/0")
        key = await _key(http)
        first = await http.post("/v1/chat/completions", json=BODY, headers=key)
        again = await http.post("/v1/chat/completions", json=BODY, headers=key)
    assert (first.status_code, first.headers["x-meterline-cache"]) == (200, "MISS")
    assert again.headers["x-meterline-cache"] == "HIT"  # its own memory still serves
