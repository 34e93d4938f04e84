"""Gateway per-request cost in-process: the app over in-memory collaborators.

The mock provider answers as upstream inside the same process (`InProcessUpstream`),
events go to a `MemoryEmitter`, and requests are plain ASGI calls: no socket, no broker,
no load generator, so the figure is the gateway's own Python cost plus the mock's, stable
enough to compare two commits on a busy machine (bench/gateway_overhead.py measures the
real servers).

    .venv/bin/python bench/gateway_inprocess.py [--requests 5000] [--api chat,messages,...]
        [--mode non-stream,stream] [--profile FILE]

Per scenario (the APIs and translated cases of bench/gateway_overhead.py): CPU
microseconds per request (process time, so other work on a shared machine counts less than
in wall time) through the gateway, the same request straight to the mock app, and the
difference: the gateway's own cost. --profile writes a cProfile of the gateway runs.

Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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

sys.path.insert(0, str(ROOT / "bench"))
from gateway_overhead import NATIVE  # noqa: E402

SECRET = "ml-bench-secret"


async def _call(app: Any, body: bytes, path: str = "/v1/chat/completions") -> int:
    """One POST as an ASGI call; returns the status."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
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


async def _run(requests: int, apis: list[Any], modes: list[bool], profile: Path | None) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            data_dir=Path(data_dir),
            providers=[  # as bench/gateway_overhead.py: claude-* over Messages, the rest chat
                ProviderConfig(
                    name="mock-anthropic",
                    kind="anthropic",
                    base_url="http://upstream/v1",
                    price_provider="anthropic",
                    models=["claude-*"],
                ),
                ProviderConfig(name="mock-openai", base_url="http://upstream/v1"),
            ],
        )
        mock = create_mock_app()
        runtime = GatewayRuntime(
            settings,
            emitter=MemoryEmitter(),
            upstream=InProcessUpstream(mock),
            views=StaticViews,
            publisher=MemoryControlPublisher(),
        )
        runtime.keys.apply({"key_id": "key_bench", "key_hash": hash_key(SECRET), "org": "acme"})
        app = create_app(settings, runtime=runtime)
        profiler = cProfile.Profile() if profile else None
        await runtime.start()
        gc.freeze()  # as the served gateway does after start-up (create_app(freeze_gc=True))
        print("| api | mode | via gateway us/req | direct us/req | gateway's own us/req |")
        print("|---|---|---|---|---|")
        try:
            for api in apis:
                for stream in modes:
                    via = await _measure(app, api.path, api.body(stream), requests, profiler)
                    direct_body = api.body(stream, NATIVE[api.client])
                    direct = await _measure(mock, api.path, direct_body, requests, None)
                    mode = "stream" if stream else "non-stream"
                    own = via - direct
                    print(f"| {api.name} | {mode} | {via:.1f} | {direct:.1f} | {own:.1f} |")
                    # The emitter keeps every event: drop them between scenarios.
                    runtime.emitter.events.clear()  # type: ignore[attr-defined]
        finally:
            await runtime.aclose()
        if profiler is not None and profile is not None:
            profiler.dump_stats(profile)


async def _measure(
    app: Any, path: str, body: bytes, requests: int, profiler: cProfile.Profile | None
) -> float:
    """Median CPU us per request over 5 batches, after a warm-up."""
    for _ in range(200):
        assert await _call(app, body, path) == 200
    samples = []
    for _ in range(5):
        if profiler is not None:
            profiler.enable()
        started = time.process_time()
        for _ in range(requests // 5):
            await _call(app, body, path)
        samples.append((time.process_time() - started) / (requests // 5) * 1e6)
        if profiler is not None:
            profiler.disable()
    return statistics.median(samples)


def main() -> None:
    from gateway_overhead import APIS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--api", default=",".join(APIS), help="comma-separated: " + ",".join(APIS))
    parser.add_argument("--mode", default="non-stream,stream")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the gateway runs")
    options = parser.parse_args()
    apis = [APIS[name] for name in options.api.split(",")]
    modes = [mode == "stream" for mode in options.mode.split(",")]
    asyncio.run(_run(options.requests, apis, modes, options.profile))


if __name__ == "__main__":
    main()
