"""The floor under the gateway's added latency: a bare pass-through on the same parts.

Runs the mock provider and, on the CPU the gateway gets in bench/gateway_overhead.py, a
bare ASGI app on uvicorn (httptools, uvloop) that forwards each request over the gateway's
own upstream client (gateway/providers/transport.py) and streams the answer back piece
by piece: no keys, no parsing, no guardrails, no events. Its added p50 over the direct
call is what one more hop costs on this machine; the gateway's added p50 minus this
floor is the gateway's own work on the critical path.

    .venv/bin/python bench/proxy_floor.py [--seconds 2.5] [--warmup 0.5] [--repeat 3]
        [--api chat,messages] [--mode stream,non-stream]

Concurrency 1 (the latency targets are at c=1). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway_overhead import APIS, free_port, pinned, run_load, wait_http

from gateway.providers.transport import Target, UpstreamClient

_UPSTREAM = os.environ.get("METERLINE_FLOOR_UPSTREAM", "")
_client: UpstreamClient | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The pass-through: the request body to the upstream, its answer back as it comes."""
    global _client
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if _client is None:
        _client = UpstreamClient()
    response = await _client.request(
        scope["method"].encode(),
        Target.of(_UPSTREAM + scope["path"]),
        b"content-type: application/json\r\nauthorization: Bearer floor\r\n",
        body,
        connect_timeout_s=5.0,
        first_byte_timeout_s=30.0,
    )
    async with response:
        kind = response.header("content-type") or "application/json"
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(b"content-type", kind.encode())],
            }
        )
        async for piece in response.chunks(30.0):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.5)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--api", default="chat,messages")
    parser.add_argument("--mode", default="stream,non-stream")
    options = parser.parse_args()
    cpus = os.cpu_count() or 1
    proxy_cpu, other = ("0", f"1-{cpus - 1}") if cpus > 1 else (None, None)
    mock_port, proxy_port = free_port(), free_port()
    mock_url, proxy_url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{proxy_port}"
    env = {**os.environ, "METERLINE_FLOOR_UPSTREAM": mock_url}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(root)
    mock_argv = [
        sys.executable,
        "-c",
        f"from meterline.mock_provider import serve; serve('127.0.0.1', {mock_port})",
    ]
    proxy_argv = [
        *(sys.executable, "-m", "uvicorn", "--app-dir", str(root / "bench")),
        *("proxy_floor:app", "--port", str(proxy_port), "--log-level", "warning"),
        *("--no-access-log", "--http", "httptools", "--loop", "uvloop"),
    ]
    processes = [
        subprocess.Popen(pinned(other, mock_argv), env=env),
        subprocess.Popen(pinned(proxy_cpu, proxy_argv), env=env),
    ]
    try:
        wait_http(f"{mock_url}/healthz")
        wait_http(f"{proxy_url}/healthz")
        print(f"floor proxy on CPU {proxy_cpu}; mock and load generator on CPUs {other}")
        print("| api | mode | direct p50 ms | floor p50 ms | floor added p50 ms |")
        print("|---|---|---|---|---|")
        for name in options.api.split(","):
            api = APIS[name]
            for mode in options.mode.split(","):
                stream = mode == "stream"
                body, url = api.body(stream), api.path
                added, direct, floor = [], [], []
                for _ in range(options.repeat):
                    d = run_load(
                        other, mock_url + url, "x", body, 1, stream, options.seconds, options.warmup
                    )["p50_ms"]
                    f = run_load(
                        other,
                        proxy_url + url,
                        "x",
                        body,
                        1,
                        stream,
                        options.seconds,
                        options.warmup,
                    )["p50_ms"]
                    direct.append(d)
                    floor.append(f)
                    added.append(f - d)
                print(
                    f"| {name} | {mode} | {statistics.median(direct):.2f} | "
                    f"{statistics.median(floor):.2f} | +{statistics.median(added):.2f} |",
                    flush=True,
                )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
