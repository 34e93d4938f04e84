"""Gateway overhead: the same load straight to the mock provider and through the gateway.

Starts an embedded broker, the mock provider and the gateway (pinned to CPU 0 with
`taskset` when available; the mock and the load generator run on the other CPUs) as
subprocesses on free ports, creates a virtual key, then runs aiohttp load at concurrency
1 and 16, non-streaming and streaming, direct and via the gateway, and prints a table.

    .venv/bin/python bench/gateway_overhead.py [--seconds 6] [--warmup 1]

Not collected by pytest. Targets: added p50 <= 2 ms at c=1, >= 600 req/s on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meterline.embedded.broker import EmbeddedBroker  # noqa: E402
from meterline.kafka import create_topics  # noqa: E402
from meterline.settings import ProviderConfig, Settings  # noqa: E402

PROMPT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpus: str | None, argv: list[str]) -> list[str]:
    if cpus is not None and shutil.which("taskset"):
        return ["taskset", "-c", cpus, *argv]
    return argv


def wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


# --- load generator (runs in its own process) --------------------------------------------


async def _load(
    url: str, key: str, concurrency: int, stream: bool, seconds: float, warmup: float
) -> dict[str, float]:
    import aiohttp

    body = json.dumps({**PROMPT, "stream": stream}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while (now := time.perf_counter()) < stop_at:
                async with session.post(url, data=body, headers=headers) as response:
                    if stream:
                        async for _ in response.content.iter_any():
                            pass
                    else:
                        await response.read()
                    ok = response.status == 200
                done = time.perf_counter()
                if now >= measure_from:
                    latencies.append(done - now)
                    errors += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def loadgen_main(args: list[str]) -> None:
    url, key, concurrency, stream, seconds, warmup = args
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(
        _load(url, key, int(concurrency), stream == "1", float(seconds), float(warmup))
    )
    print(json.dumps(result))


def run_load(
    cpus: str | None,
    url: str,
    key: str,
    concurrency: int,
    stream: bool,
    seconds: float,
    warmup: float,
) -> dict[str, float]:
    argv = pinned(
        cpus,
        [
            sys.executable,
            __file__,
            "--loadgen",
            url,
            key,
            str(concurrency),
            "1" if stream else "0",
            str(seconds),
            str(warmup),
        ],
    )
    output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


# --- orchestration ------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    options = parser.parse_args()

    cpus = os.cpu_count() or 1
    gateway_cpu = "0" if cpus > 1 else None
    other_cpus = f"1-{cpus - 1}" if cpus > 1 else None
    work = Path(tempfile.mkdtemp(prefix="meterline-bench-"))
    broker = EmbeddedBroker(free_port())
    broker.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        mock_port, gateway_port = free_port(), free_port()
        mock_url = f"http://127.0.0.1:{mock_port}"
        settings = Settings(
            kafka_bootstrap=broker.bootstrap,
            data_dir=work,
            gateway_port=gateway_port,
            topic_prefix="bench.",
            topic_partitions=1,
            admin_token="bench-admin",
            providers=[ProviderConfig(name="mock", base_url=f"{mock_url}/v1")],
        )
        create_topics(settings)
        env = {**os.environ, **settings.child_env(), "PYTHONPATH": str(ROOT)}
        log = (work / "services.log").open("wb")
        processes.append(
            subprocess.Popen(
                pinned(
                    other_cpus,
                    [
                        sys.executable,
                        "-c",
                        "from meterline.mock_provider import serve; "
                        f"serve('127.0.0.1', {mock_port})",
                    ],
                ),
                env=env,
                stdout=log,
                stderr=log,
            )
        )
        processes.append(
            subprocess.Popen(
                pinned(
                    gateway_cpu,
                    [
                        sys.executable,
                        "-c",
                        "from gateway.server import serve; "
                        "from meterline.settings import Settings; serve(Settings())",
                    ],
                ),
                env=env,
                stdout=log,
                stderr=log,
            )
        )
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        wait_http(f"{mock_url}/healthz")
        wait_http(f"{gateway_url}/healthz")
        key = httpx.post(
            f"{gateway_url}/admin/keys",
            json={"org": "bench"},
            headers={"Authorization": "Bearer bench-admin"},
            timeout=10,
        ).json()["key"]

        rows = []
        for stream in (False, True):
            for concurrency in (1, 16):
                direct = run_load(
                    other_cpus,
                    f"{mock_url}/v1/chat/completions",
                    "direct",
                    concurrency,
                    stream,
                    options.seconds,
                    options.warmup,
                )
                via = run_load(
                    other_cpus,
                    f"{gateway_url}/v1/chat/completions",
                    key,
                    concurrency,
                    stream,
                    options.seconds,
                    options.warmup,
                )
                rows.append((stream, concurrency, direct, via))
        health = httpx.get(f"{gateway_url}/healthz").json()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\ngateway pinned to CPU {gateway_cpu}; mock + load generator on CPUs {other_cpus}; "
        f"{options.seconds:.0f}s per run after {options.warmup:.0f}s warm-up\n"
    )
    header = (
        "| mode | c | direct req/s | direct p50 / p99 ms | gateway req/s | "
        "gateway p50 / p99 ms | added p50 / p99 ms | errors |"
    )
    print(header)
    print("|" + "---|" * 8)
    for stream, concurrency, direct, via in rows:
        print(
            f"| {'stream' if stream else 'non-stream'} | {concurrency} "
            f"| {direct['rps']:,.0f} | {direct['p50_ms']:.2f} / {direct['p99_ms']:.2f} "
            f"| {via['rps']:,.0f} | {via['p50_ms']:.2f} / {via['p99_ms']:.2f} "
            f"| {via['p50_ms'] - direct['p50_ms']:+.2f} / {via['p99_ms'] - direct['p99_ms']:+.2f} "
            f"| {direct['errors']:.0f} / {via['errors']:.0f} |"
        )
    best = max(via["rps"] for stream, _, _, via in rows if not stream)
    c1 = next(via["p50_ms"] - direct["p50_ms"] for s, c, direct, via in rows if not s and c == 1)
    print(
        f"\nrequests/s per gateway core (non-streaming, best concurrency): {best:,.0f} "
        f"(target >= 600)"
    )
    print(f"added p50 at c=1, non-streaming: {c1:.2f} ms (target <= 2 ms)")
    print(f"events emitted: emitter {health['emitter']}, spool {health['spool_size']}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        loadgen_main(sys.argv[2:])
    else:
        main()
