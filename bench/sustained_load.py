"""Sustained load through the whole embedded stack: consumer lag and decision propagation.

Starts the stack as `meterline up --mock-provider` does (broker, mock provider, N gateway
processes on one port, processors workers, ingest with its sink consumers) on free ports
in a temp dir, creates keys over the admin API, then for `--seconds` sends chat requests
open-loop at `--rate` per second (spread over the keys) and meanwhile:
- samples the processors' consumer lag on the requests topic once a second (high
  watermarks minus the group's committed offsets, summed over partitions);
- every 2 s blocks a probe key through the admin API and times until EVERY gateway
  process refuses it (each on its own port, gateway_port + 1 + i), then lifts it.

    .venv/bin/python bench/sustained_load.py [--rate 1000] [--seconds 30] [--gateways 2]
        [--processors 1] [--sinks 1]

Prints achieved req/s, status counts, latency p50/p99, lag p50/p99/max and decision
propagation p50/p99/max. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import httpx
from confluent_kafka import Consumer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meterline.kafka import consumer_config  # noqa: E402
from meterline.ports import free_port  # noqa: E402
from meterline.runtime import Stack  # noqa: E402
from meterline.settings import Settings  # noqa: E402
from meterline.workers import gateway_worker_port  # noqa: E402
from schemas.topics import REQUESTS  # noqa: E402

ADMIN_TOKEN = "bench-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}


def _settings(data_dir: Path, options: argparse.Namespace) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings(
        data_dir=data_dir,
        topic_prefix=f"bench-{run}.",
        gateway_port=free_port(options.gateways + 1),
        ingest_port=free_port(),
        processors_port=free_port(options.processors),
        broker_port=free_port(),
        mock_provider_port=free_port(),
        dashboard_port=free_port(),
        admin_token=ADMIN_TOKEN,
        gateway={"workers": options.gateways},
        processors={"workers": options.processors, "app_id": f"bench-procs-{run}"},
        ingest={"sink": {"workers": options.sinks, "group_id": f"bench-sink-{run}"}},
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LagSampler(threading.Thread):
    """The processors group's lag on the requests topic, once a second."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.samples: list[int] = []
        self._finished = threading.Event()
        self._topic = settings.topic(REQUESTS)
        self._consumer = Consumer(consumer_config(settings, settings.processors.app_id))

    def run(self) -> None:
        metadata = self._consumer.list_topics(self._topic, timeout=10)
        partitions = [
            TopicPartition(self._topic, p) for p in metadata.topics[self._topic].partitions
        ]
        while not self._finished.wait(1.0):
            committed = self._consumer.committed(partitions, timeout=5)
            lag = 0
            for tp in committed:
                _, high = self._consumer.get_watermark_offsets(tp, timeout=5)
                lag += high - max(tp.offset, 0)
            self.samples.append(lag)

    def stop(self) -> None:
        self._finished.set()
        self.join(timeout=10)
        self._consumer.close()


async def _load(
    gateway: str, keys: list[str], rate: int, seconds: float
) -> tuple[Counter, list[float]]:
    statuses: Counter = Counter()
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(secret: str) -> None:
            started = time.perf_counter()
            try:
                async with session.post(
                    f"{gateway}/v1/chat/completions",
                    json=BODY,
                    headers={"Authorization": f"Bearer {secret}"},
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as response:
                    await response.read()
                    statuses[response.status] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - started)

        tasks = set()
        start = time.perf_counter()
        sent = 0
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                task = asyncio.ensure_future(one(keys[sent % len(keys)]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
    return statuses, latencies


def _propagation(
    settings: Settings, probe: dict, workers: int, stop: threading.Event
) -> list[float]:
    """Block the probe key, time until every gateway process refuses it, lift; repeat."""
    admin = f"http://127.0.0.1:{settings.gateway_port}"
    ports = [gateway_worker_port(settings, i) for i in range(workers)]
    headers = {"Authorization": f"Bearer {probe['key']}"}
    subject = f"key:{probe['key_id']}"
    times: list[float] = []
    with httpx.Client(timeout=10) as client:
        while not stop.wait(2.0):
            started = time.perf_counter()
            client.post(
                f"{admin}/admin/enforcement",
                json={"subject": subject, "action": "block", "reason": "bench"},
                headers=ADMIN,
            ).raise_for_status()
            pending = set(ports)
            while pending and time.perf_counter() - started < 10:
                for port in list(pending):
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    if client.post(url, json=BODY, headers=headers).status_code == 403:
                        pending.discard(port)
                time.sleep(0.005)
            times.append(time.perf_counter() - started if not pending else float("inf"))
            client.delete(f"{admin}/admin/enforcement/{subject}", headers=ADMIN)
            deadline = time.perf_counter() + 10
            while time.perf_counter() < deadline and any(
                client.post(
                    f"http://127.0.0.1:{p}/v1/chat/completions", json=BODY, headers=headers
                ).status_code
                == 403
                for p in ports
            ):
                time.sleep(0.05)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--processors", type=int, default=1)
    parser.add_argument("--sinks", type=int, default=1)
    parser.add_argument("--keys", type=int, default=50)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(Path(tmp), options)
        stack = Stack(settings, mock_provider=True, progress=lambda text: print(text, flush=True))
        stack.start()
        settings = stack.settings
        try:
            gateway = f"http://127.0.0.1:{settings.gateway_port}"
            print(f"creating {options.keys} keys ...", flush=True)
            keys = [
                httpx.post(
                    f"{gateway}/admin/keys",
                    json={"org": f"org-{i % 5}", "team": f"team-{i % 10}", "project": "bench"},
                    headers=ADMIN,
                    timeout=10,
                ).json()["key"]
                for i in range(options.keys)
            ]
            probe = httpx.post(
                f"{gateway}/admin/keys",
                json={"org": "probe", "team": "probe", "project": "bench"},
                headers=ADMIN,
                timeout=10,
            ).json()
            time.sleep(2)  # every gateway process has read the keys
            lag = LagSampler(settings)
            lag.start()
            stop = threading.Event()
            decisions: list[float] = []
            prober = threading.Thread(
                target=lambda: decisions.extend(
                    _propagation(settings, probe, options.gateways, stop)
                ),
                daemon=True,
            )
            prober.start()
            print(f"sending {options.rate} req/s for {options.seconds:.0f}s ...", flush=True)
            started = time.perf_counter()
            statuses, latencies = asyncio.run(_load(gateway, keys, options.rate, options.seconds))
            elapsed = time.perf_counter() - started
            stop.set()
            prober.join(timeout=30)
            time.sleep(3)  # the tail of the lag
            lag.stop()
        finally:
            stack.stop()
    done = sum(statuses.values())
    rate = done / elapsed
    print(f"\n{done} requests in {elapsed:.1f}s: {rate:,.0f} req/s; statuses {dict(statuses)}")
    print(
        f"latency p50 {_percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {_percentile(latencies, 0.99) * 1000:.1f} ms"
    )
    print(
        f"processors lag on requests (events, 1/s samples, n={len(lag.samples)}): "
        f"p50 {_percentile(lag.samples, 0.5):.0f}, p99 {_percentile(lag.samples, 0.99):.0f}, "
        f"max {max(lag.samples, default=0)}"
    )
    if decisions:
        print(
            f"block reaches all {options.gateways} gateways (n={len(decisions)}): "
            f"p50 {statistics.median(decisions) * 1000:.0f} ms, "
            f"p99 {_percentile(decisions, 0.99) * 1000:.0f} ms, max {max(decisions) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
