"""Gateway per-request cost in-process: the app over in-memory collaborators.

The mock provider answers as upstream inside the same process (`InProcessUpstream`),
events go to a `MemoryEmitter`, and requests are plain ASGI calls: no socket, no broker,
no load generator, so the figure is the gateway's own Python cost plus the mock's, stable
enough to compare two commits on a busy machine (bench/gateway_overhead.py measures the
real servers).

    .venv/bin/python bench/gateway_inprocess.py [--requests 5000]

Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.app import create_app  # noqa: E402
from gateway.collaborators import MemoryControlPublisher, StaticViews  # noqa: E402
from gateway.emit import MemoryEmitter  # noqa: E402
from gateway.providers import InProcessUpstream  # noqa: E402
from gateway.runtime import GatewayRuntime  # noqa: E402
from meterline.mock_provider import create_app as create_mock_app  # noqa: E402
from meterline.settings import ProviderConfig, Settings  # noqa: E402
from schemas.ids import hash_key  # noqa: E402

SECRET = "ml-bench-secret"


async def _call(app: Any, body: bytes) -> int:
    """One POST /v1/chat/completions as an ASGI call; returns the status."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [
            (b"authorization", b"Bearer " + SECRET.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _run(requests: int) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            data_dir=Path(data_dir),
            providers=[ProviderConfig(name="mock", base_url="http://upstream/v1")],
        )
        runtime = GatewayRuntime(
            settings,
            emitter=MemoryEmitter(),
            upstream=InProcessUpstream(create_mock_app()),
            views=StaticViews,
            publisher=MemoryControlPublisher(),
        )
        runtime.keys.apply({"key_id": "key_bench", "key_hash": hash_key(SECRET), "org": "acme"})
        app = create_app(settings, runtime=runtime)
        await runtime.start()
        try:
            for stream in (False, True):
                body = orjson.dumps(
                    {
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": "Say hello."}],
                        "stream": stream,
                    }
                )
                for _ in range(200):  # warm-up
                    await _call(app, body)
                samples = []
                for _ in range(5):
                    started = time.perf_counter()
                    for _ in range(requests // 5):
                        assert await _call(app, body) == 200
                    samples.append((time.perf_counter() - started) / (requests // 5) * 1e6)
                mode = "stream" if stream else "non-stream"
                print(f"{mode:10}  {statistics.median(samples):7.1f} us/request (median of 5)")
        finally:
            await runtime.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    asyncio.run(_run(parser.parse_args().requests))


if __name__ == "__main__":
    main()
