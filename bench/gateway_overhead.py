"""Gateway overhead: the same load straight to the mock provider and through the gateway.

Starts an embedded broker, the mock provider and the gateway (pinned to CPU 0 with
`taskset` when available; the mock and the load generator run on the other CPUs) as
subprocesses on free ports, creates a virtual key, then runs aiohttp load per scenario:
chat completions, Anthropic Messages and Responses, non-streaming and streaming, at
concurrency 1 and 16, direct to the mock and via the gateway (pass-through), plus the
translated cases (a chat client asking for a Claude model served by the `anthropic`-kind
provider, a Messages client asking for a GPT model). The gateway runs with its defaults:
its own span, guardrails and the prompt signature on.

Per scenario: req/s, p50/p99, added p50 (gateway p50 - direct p50 of the same client
API, stream mode and concurrency) and the gateway's CPU milliseconds per request: the
gateway process's user+system CPU time (/proc/<pid>/stat, every thread, librdkafka's
included) over the requests completed in the measured window.

    .venv/bin/python bench/gateway_overhead.py [--seconds 4] [--warmup 1]
        [--api chat,messages,responses,chat->claude,messages->gpt] [--mode non-stream,stream]
        [--concurrency 1,16] [--repeat 1] [--json FILE] [--compare ROOT] [--py-spy DIR]

With --repeat N every scenario runs N times (interleaved) and the table shows medians.
--compare ROOT also starts a second gateway from another checkout (e.g. `git worktree`
or `git archive` of the commit before a change) on the same CPU, broker and mock, and
runs each scenario on both back to back (order alternating per repeat): a second table
gives B -> A per scenario and the median of the per-pair ratios A/B, so machine drift
between scenarios cancels out.
Not collected by pytest. Targets (issue 12): <= 0.4 ms gateway CPU per request at c=16
non-streaming; streaming added p50 at c=1 <= 0.8 ms; >= 600 req/s on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
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
from meterline.ports import free_port  # noqa: E402
from meterline.settings import ProviderConfig, Settings  # noqa: E402

PROMPT = [{"role": "user", "content": "Say hello."}]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Api:
    """One client API: its path and request body; `model` picks the upstream (translated
    when the model's provider speaks the other API)."""

    def __init__(self, name: str, client: str, model: str) -> None:
        self.name = name
        self.client = client  # chat | messages | responses: what the client speaks
        self.model = model
        self.path = {
            "chat": "/v1/chat/completions",
            "messages": "/v1/messages",
            "responses": "/v1/responses",
        }[client]

    def body(self, stream: bool, model: str | None = None) -> bytes:
        model = model or self.model
        if self.client == "chat":
            body = {"model": model, "messages": PROMPT}
        elif self.client == "messages":
            body = {"model": model, "max_tokens": 256, "messages": PROMPT}
        else:
            body = {"model": model, "input": PROMPT[0]["content"]}
        return json.dumps({**body, "stream": stream}).encode()


GPT, CLAUDE = "gpt-4o-mini", "claude-3-5-haiku-latest"
APIS = {
    api.name: api
    for api in (
        Api("chat", "chat", GPT),
        Api("messages", "messages", CLAUDE),
        Api("responses", "responses", GPT),
        Api("chat->claude", "chat", CLAUDE),  # translated: chat -> Messages upstream
        Api("messages->gpt", "messages", GPT),  # translated: Messages -> chat upstream
    )
}
# The direct baseline of a translated scenario: the client's own API, its native model.
NATIVE = {"chat": GPT, "messages": CLAUDE, "responses": GPT}


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process, all its threads (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


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
    url: str,
    key: str,
    body: bytes,
    concurrency: int,
    stream: bool,
    seconds: float,
    warmup: float,
    pid: int,
) -> dict[str, float]:
    import aiohttp

    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "anthropic-version": "2023-06-01",
    }
    latencies: list[float] = []
    errors = 0
    completed = 0  # every finished request, for the CPU window
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    window: dict[str, float] = {}

    async def cpu_window() -> None:
        # The served process's CPU time over the measured window, and the requests it
        # completed in that window (steady state: in-flight ones balance at both ends).
        await asyncio.sleep(measure_from - time.perf_counter())
        window["cpu0"], window["n0"] = cpu_seconds(pid) if pid else 0.0, completed
        await asyncio.sleep(stop_at - time.perf_counter())
        window["cpu1"], window["n1"] = cpu_seconds(pid) if pid else 0.0, completed

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors, completed
            while (now := time.perf_counter()) < stop_at:
                async with session.post(url, data=body, headers=headers) as response:
                    if stream:
                        async for _ in response.content.iter_any():
                            pass
                    else:
                        await response.read()
                    ok = response.status == 200
                done = time.perf_counter()
                completed += 1
                if now >= measure_from:
                    latencies.append(done - now)
                    errors += not ok

        await asyncio.gather(cpu_window(), *(worker() for _ in range(concurrency)))
    latencies.sort()
    served = window["n1"] - window["n0"]
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "cpu_ms": (window["cpu1"] - window["cpu0"]) * 1000 / served if pid and served else 0.0,
    }


def loadgen_main(args: list[str]) -> None:
    url, key, body, concurrency, stream, seconds, warmup, pid = args
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(
        _load(
            url,
            key,
            body.encode(),
            int(concurrency),
            stream == "1",
            float(seconds),
            float(warmup),
            int(pid),
        )
    )
    print(json.dumps(result))


def run_load(
    cpus: str | None,
    url: str,
    key: str,
    body: bytes,
    concurrency: int,
    stream: bool,
    seconds: float,
    warmup: float,
    pid: int = 0,
) -> dict[str, float]:
    argv = pinned(
        cpus,
        [
            sys.executable,
            __file__,
            "--loadgen",
            url,
            key,
            body.decode(),
            str(concurrency),
            "1" if stream else "0",
            str(seconds),
            str(warmup),
            str(pid),
        ],
    )
    output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


# --- orchestration ------------------------------------------------------------------------


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--api", default=",".join(APIS), help="comma-separated: " + ",".join(APIS))
    parser.add_argument("--mode", default="non-stream,stream")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario (medians)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--compare", type=Path, metavar="ROOT", help="B: a second gateway from this checkout"
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="record the gateway with py-spy (collapsed stacks, one file per scenario)",
    )
    options = parser.parse_args()
    apis = [APIS[name] for name in options.api.split(",")]
    modes = [mode == "stream" for mode in options.mode.split(",")]
    levels = [int(c) for c in options.concurrency.split(",")]

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
        # Two upstreams on the one mock, as `meterline up --demo` has them
        # (meterline.runtime.demo_providers): claude-* over Messages, the rest over chat.
        settings = Settings(
            kafka_bootstrap=broker.bootstrap,
            data_dir=work,
            gateway_port=gateway_port,
            topic_prefix="bench.",
            topic_partitions=1,
            admin_token="bench-admin",
            providers=[
                ProviderConfig(
                    name="mock-anthropic",
                    kind="anthropic",
                    base_url=f"{mock_url}/v1",
                    price_provider="anthropic",
                    models=["claude-*"],
                ),
                ProviderConfig(name="mock-openai", base_url=f"{mock_url}/v1"),
            ],
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
        gateway_argv = [
            sys.executable,
            "-c",
            "from gateway.server import serve; "
            "from meterline.settings import Settings; serve(Settings())",
        ]
        gateway = subprocess.Popen(
            pinned(gateway_cpu, gateway_argv),  # taskset execs: the pid is the gateway's own
            env=env,
            stdout=log,
            stderr=log,
        )
        processes.append(gateway)
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        compare: subprocess.Popen[bytes] | None = None
        compare_url = ""
        if options.compare:
            compare_port = free_port()
            compare_url = f"http://127.0.0.1:{compare_port}"
            (work / "b").mkdir()
            b_settings = settings.model_copy(
                update={"data_dir": work / "b", "gateway_port": compare_port}
            )
            b_env = {
                **os.environ,
                **b_settings.child_env(),
                "PYTHONPATH": str(options.compare.resolve()),
            }
            compare = subprocess.Popen(
                pinned(gateway_cpu, gateway_argv),
                env=b_env,
                stdout=log,
                stderr=log,
                cwd=options.compare,
            )
            processes.append(compare)
        wait_http(f"{mock_url}/healthz")
        wait_http(f"{gateway_url}/healthz")
        keys = {}
        for url in filter(None, (gateway_url, compare_url)):
            wait_http(f"{url}/healthz")
            keys[url] = httpx.post(
                f"{url}/admin/keys",
                json={"org": "bench"},
                headers={"Authorization": "Bearer bench-admin"},
                timeout=10,
            ).json()["key"]
        key = keys[gateway_url]

        def load(
            url: str, body: bytes, stream: bool, c: int, pid: int = 0, key: str = key
        ) -> dict[str, float]:
            return run_load(
                other_cpus, url, key, body, c, stream, options.seconds, options.warmup, pid
            )

        b_runs: dict[tuple[str, bool, int], list[dict[str, float]]] = {}

        direct_runs: dict[tuple[str, bool, int], list[dict[str, float]]] = {}
        via_runs: dict[tuple[str, bool, int], list[dict[str, float]]] = {}
        for _ in range(options.repeat):
            for api in apis:
                for stream in modes:
                    for c in levels:
                        baseline = (api.client, stream, c)
                        if len(direct_runs.get(baseline, ())) <= _:
                            body = api.body(stream, NATIVE[api.client])
                            direct_runs.setdefault(baseline, []).append(
                                load(f"{mock_url}{api.path}", body, stream, c)
                            )
                        spy = None
                        if options.py_spy and not _:
                            options.py_spy.mkdir(parents=True, exist_ok=True)
                            mode = "stream" if stream else "non-stream"
                            out = options.py_spy / f"{api.name}-{mode}-c{c}.txt"
                            seconds = str(int(options.seconds + options.warmup))
                            spy = subprocess.Popen(
                                pinned(
                                    other_cpus,
                                    [
                                        *("py-spy", "record", "-p", str(gateway.pid)),
                                        *("-o", str(out), "-f", "raw", "-r", "200"),
                                        *("--nonblocking", "-d", seconds),
                                    ],
                                ),
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                            )
                        scenario = (api.name, stream, c)
                        if compare is not None and _ % 2:  # B first on odd repeats
                            b_runs.setdefault(scenario, []).append(
                                load(
                                    f"{compare_url}{api.path}",
                                    api.body(stream),
                                    stream,
                                    c,
                                    compare.pid,
                                    keys[compare_url],
                                )
                            )
                        via_runs.setdefault(scenario, []).append(
                            load(
                                f"{gateway_url}{api.path}",
                                api.body(stream),
                                stream,
                                c,
                                gateway.pid,
                            )
                        )
                        if spy is not None:
                            spy.wait()
                        if compare is not None and not _ % 2:
                            b_runs.setdefault(scenario, []).append(
                                load(
                                    f"{compare_url}{api.path}",
                                    api.body(stream),
                                    stream,
                                    c,
                                    compare.pid,
                                    keys[compare_url],
                                )
                            )
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

    rows = []
    for (name, stream, c), runs in via_runs.items():
        direct = _median(direct_runs[(APIS[name].client, stream, c)])
        rows.append((name, stream, c, direct, _median(runs)))
    print(
        f"\ngateway pinned to CPU {gateway_cpu}; mock + load generator on CPUs {other_cpus}; "
        f"{options.seconds:g}s per run after {options.warmup:g}s warm-up; "
        f"medians of {options.repeat} run(s); load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| api | mode | c | direct req/s | direct p50 ms | gateway req/s "
        "| gateway p50 / p99 ms | added p50 ms | gateway CPU ms/req | errors |"
    )
    print("|" + "---|" * 10)
    for name, stream, c, direct, via in rows:
        print(
            f"| {name} | {'stream' if stream else 'non-stream'} | {c} "
            f"| {direct['rps']:,.0f} | {direct['p50_ms']:.2f} "
            f"| {via['rps']:,.0f} | {via['p50_ms']:.2f} / {via['p99_ms']:.2f} "
            f"| {via['p50_ms'] - direct['p50_ms']:+.2f} | {via['cpu_ms']:.3f} "
            f"| {direct['errors']:.0f} / {via['errors']:.0f} |"
        )
    print(
        "\n(api a->b: translated; its direct column is the client's own API to the mock "
        "with that API's native model)"
    )
    if b_runs:
        print(f"\nA = this checkout, B = {options.compare}: B -> A, ratio A/B (median of pairs)\n")
        print(
            "| api | mode | c | gateway CPU ms/req B -> A | ratio | added p50 ms B -> A "
            "| ratio | gateway req/s B -> A |"
        )
        print("|" + "---|" * 8)
        for (name, stream, c), runs in via_runs.items():
            pairs = list(zip(runs, b_runs[(name, stream, c)], strict=True))
            direct = _median(direct_runs[(APIS[name].client, stream, c)])
            a, b = _median(runs), _median(b_runs[(name, stream, c)])
            cpu = statistics.median(x["cpu_ms"] / y["cpu_ms"] for x, y in pairs)
            added = statistics.median(
                (x["p50_ms"] - direct["p50_ms"]) / (y["p50_ms"] - direct["p50_ms"])
                for x, y in pairs
            )
            print(
                f"| {name} | {'stream' if stream else 'non-stream'} | {c} "
                f"| {b['cpu_ms']:.3f} -> {a['cpu_ms']:.3f} | x{cpu:.2f} "
                f"| {b['p50_ms'] - direct['p50_ms']:+.2f} -> {a['p50_ms'] - direct['p50_ms']:+.2f} "
                f"| x{added:.2f} | {b['rps']:,.0f} -> {a['rps']:,.0f} |"
            )
    if options.json:
        options.json.write_text(
            json.dumps(
                [
                    {
                        "api": n,
                        "stream": s,
                        "c": c,
                        "direct": d,
                        "gateway": v,
                        "runs": via_runs[(n, s, c)],
                        "compare_runs": b_runs.get((n, s, c), []),
                    }
                    for n, s, c, d, v in rows
                ],
                indent=1,
            )
        )
    for name, stream, c, direct, via in rows:
        if name == "chat" and c == 16 and not stream:
            print(f"chat non-stream c=16: {via['cpu_ms']:.3f} ms gateway CPU/request (<= 0.4)")
        if name == "chat" and c == 1 and stream:
            added = via["p50_ms"] - direct["p50_ms"]
            print(f"chat stream c=1: added p50 {added:.2f} ms (target <= 0.8 ms)")
    print(f"events emitted: emitter {health['emitter']}, spool {health['spool_size']}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        loadgen_main(sys.argv[2:])
    else:
        main()
