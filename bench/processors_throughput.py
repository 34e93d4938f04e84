"""Processors throughput: request events on Kafka -> CostEvents, with every agent on.

Starts the embedded broker (tansu) in a temp dir, creates the topics, publishes budgets on
the control topic (org, team and key budgets, some small enough to go hard, so budgets
and their alerts are busy), pre-produces N realistic RequestEvents (several orgs, keys and
models, priced and unpriced, agent-loop sessions with repeated prompts, a few failing
requests), then starts ONE processors worker as `meterline processors` runs it (`python -m
processors`, its own settings and topic prefix; alerts on, to a local webhook that
answers 200) and times it: from the first CostEvent to the last (their record
timestamps, so the group join and start-up are not counted), with the worker's CPU
seconds over the same span (/proc). Every other output topic is counted too.

    .venv/bin/python bench/processors_throughput.py [--events 50000] [--profile]

`--profile` runs the worker under py-spy (when installed) and prints each agent's share
of the samples (a sample belongs to the outermost processors/<stage>/ frame on its
stack; none: Faust, aiokafka and asyncio plumbing). py-spy slows the worker: rates of a
profiled run are not comparable. A/B against another checkout: run this file with
PYTHONPATH=<that checkout> (the worker subprocess inherits it).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import consumer_config, create_topics, producer_config
from meterline.settings import Settings
from schemas.events.v1 import BudgetRecord, RequestEvent
from schemas.topics import ANOMALIES, BUDGETS, CONTROL, COSTS, DLQ, DRIFT, ENFORCEMENT, REQUESTS

TARGET_EVENTS_PER_S = 10_000
OUTPUTS = [COSTS, BUDGETS, ENFORCEMENT, ANOMALIES, DRIFT, DLQ]
# (provider, model): priced by genai-prices, except the local/unknown ones.
MODELS = [
    ("openai", "gpt-4o-mini-2024-07-18"),
    ("openai", "gpt-4o-2024-08-06"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("google", "gemini-2.0-flash"),
    ("vllm", "my-finetune-7b"),  # unpriced
]
ORGS = 5
KEYS = 200
STAGES = ("cost", "budgets", "llmjacking", "agentloop", "drift", "spans", "alerts")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_event(i: int, now: datetime, rng: random.Random) -> RequestEvent:
    at = now + timedelta(milliseconds=i)  # produced in time order, like live traffic
    key = i % KEYS
    provider, model = MODELS[(i // 7) % len(MODELS)] if key % 4 else MODELS[key % len(MODELS)]
    session = i // 20  # a session of 20 steps; every 10th session loops on one prompt
    looping = session % 10 == 0
    failed = i % 97 == 0
    return RequestEvent(
        request_id=f"req-{i}",
        ts=at,
        ts_start=at,
        ts_end=at + timedelta(milliseconds=420),
        latency_ms=420.0 + rng.random() * 50,
        ttft_ms=95.0,
        key_id=f"key-{key}",
        org=f"org-{key % ORGS}",
        team=f"team-{key % 20}",
        project=f"project-{key % 50}",
        user=f"user-{i % 1000}",
        session_id=f"sess-{session}",
        client_ip=f"10.0.{key % 7}.{key}",
        user_agent="openai-python/1.50",
        provider=provider,
        model_requested=model,
        model_used=model,
        endpoint="/v1/chat/completions",
        status_code=500 if failed else 200,
        error_type="upstream_error" if failed else None,
        input_tokens=0 if failed else 300 + rng.randrange(700),
        output_tokens=0 if failed else 50 + rng.randrange(300),
        cache_read_tokens=0 if failed or i % 3 else 100,
        prompt_hash=f"{session:064x}" if looping else f"{i:064x}",
        prompt_chars=1200 + rng.randrange(400),
        response_chars=400 + rng.randrange(400),
        finish_reason=None if failed else "stop",
        enforcement={"rate_limit": "ok"},
    )


def budgets() -> list[BudgetRecord]:
    records = [
        BudgetRecord(budget_id=f"org-{o}", subject=f"org:org-{o}", period="month", limit_usd="1e6")
        for o in range(ORGS)
    ]
    records += [
        BudgetRecord(budget_id=f"team-{t}", subject=f"team:team-{t}", period="day", limit_usd="1e5")
        for t in range(20)
    ]
    # Small key budgets: they go soft, then hard (a block decision and alerts each).
    records += [
        BudgetRecord(
            budget_id=f"key-{k}",
            subject=f"key:key-{k}",
            period="day",
            limit_usd="0.05",
            action_on_hard="block",
        )
        for k in range(0, KEYS, 10)
    ]
    return records


class _Webhook(BaseHTTPRequestHandler):
    count = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        _Webhook.count += 1
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def produce_all(settings: Settings, n: int) -> float:
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    for record in budgets():
        key = f"budget:{record.budget_id}"
        producer.produce(settings.topic(CONTROL), record.to_json(), key=key)
    now = datetime.now(UTC) - timedelta(seconds=n / 1000 + 60)
    rng = random.Random(1)
    started = time.perf_counter()
    for i in range(n):
        event = request_event(i, now, rng)
        while True:
            try:
                producer.produce(settings.topic(REQUESTS), event.to_json(), key=event.key_id)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    return time.perf_counter() - started


def profile_shares(raw: Path) -> dict[str, float]:
    """py-spy's raw (collapsed) output -> share of samples per stage or 'plumbing'."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        owner = "plumbing (faust/aiokafka/asyncio)"
        for frame in stack.split(";"):
            path = frame.rpartition("(")[2]
            if "processors/" in path and "site-packages" not in path:
                part = path.split("processors/", 1)[1].split("/", 1)[0]
                if part in STAGES:
                    owner = part
                    break
                if part.endswith(".py") and part not in ("worker.py", "__main__.py", "app.py"):
                    owner = f"shared ({part})"
                    break
        if "_find_and_load" in stack:
            continue  # start-up imports: not per-event work
        if "(idle)" in stack or stack.endswith("select (selectors.py") or "epoll" in stack:
            owner = "idle (waiting on the broker)"
        counts[owner] += int(count)
    total = sum(counts.values()) or 1
    return {owner: count / total for owner, count in counts.most_common()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="run the worker under py-spy")
    parser.add_argument("--profile-out", type=Path, help="keep py-spy's raw profile here")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    webhook = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{webhook.server_address[1]}/hook"
    with tempfile.TemporaryDirectory(prefix="meterline-bench-proc-") as tmp:
        broker = EmbeddedBroker(free_port())
        broker.start()
        worker: subprocess.Popen[bytes] | None = None
        try:
            settings = Settings(
                kafka_bootstrap=broker.bootstrap,
                data_dir=Path(tmp) / "data",
                topic_prefix="benchproc.",
                topic_partitions=args.partitions,
                kafka_session_timeout_ms=6000,
                processors_port=free_port(),
                ingest_port=free_port(),  # nothing listens: the reconcile gives up quickly
                processors={
                    "app_id": "bench-processors",
                    "budget": {"reconcile_timeout_s": 1.0, "tick_interval_s": 1.0},
                    "alert": {"webhooks": [hook_url], "security_webhooks": [hook_url]},
                },
            )
            create_topics(settings)
            produce_s = produce_all(settings, args.events)

            env = {**os.environ, **settings.child_env()}
            env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
            command = [sys.executable, "-m", "processors"]
            raw = Path(tmp) / "profile.txt"
            if args.profile:
                if shutil.which("py-spy") is None:
                    print("py-spy not installed: no profile", file=sys.stderr)
                else:
                    command = ["py-spy", "record", "--format", "raw", "-r", "200"]
                    command += ["-o", str(raw), "--nonblocking", "--"]
                    command += [sys.executable, "-m", "processors"]
            log_path = Path(tmp) / "worker.log"
            with log_path.open("ab") as log:
                worker = subprocess.Popen(
                    command, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT
                )
            pid = worker_pid(worker, args.profile and command[0] == "py-spy")

            consumer = Consumer(consumer_config(settings, group_id=None))
            consumer.assign(
                [
                    TopicPartition(settings.topic(name), p, OFFSET_BEGINNING)
                    for name in OUTPUTS
                    for p in range(settings.effective_topic_partitions)
                ]
            )
            counts: collections.Counter[str] = collections.Counter()
            first_ms = last_ms = 0
            cpu_first = cpu_last = 0.0
            total_cost = Decimal(0)
            unpriced = 0
            started = time.monotonic()
            deadline = started + args.timeout
            prefix = len(settings.topic_prefix)
            while counts[COSTS] < args.events:
                if time.monotonic() > deadline or worker.poll() is not None:
                    print(f"stopped with {dict(counts)}", file=sys.stderr)
                    print(log_path.read_text()[-3000:], file=sys.stderr)
                    return 1
                for message in consumer.consume(10_000, 0.2):
                    if message.error() is not None:
                        continue
                    topic = message.topic()[prefix:]
                    counts[topic] += 1
                    if topic != COSTS:
                        continue
                    ts = message.timestamp()[1]
                    if first_ms == 0:
                        first_ms, cpu_first = ts, cpu_seconds(pid)
                    last_ms = max(last_ms, ts)
                    value = message.value() or b""
                    total_cost += Decimal(_field(value, b'"total_cost":"', b'"') or "0")
                    unpriced += b'"priced":false' in value
            cpu_last = cpu_seconds(pid)
            # Let the other outputs (budgets, alerts) drain for a moment, then count them.
            quiet_until = time.monotonic() + 3.0
            while time.monotonic() < quiet_until:
                for message in consumer.consume(10_000, 0.2):
                    if message.error() is None:
                        counts[message.topic()[prefix:]] += 1
                        quiet_until = time.monotonic() + 2.0
            cpu_end = cpu_seconds(pid)
            consumer.close()
        finally:
            if worker is not None and worker.poll() is None:
                worker.send_signal(2)  # SIGINT: py-spy writes its profile, Faust stops
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(10)
            broker.stop()
            webhook.shutdown()
        shares = profile_shares(raw) if args.profile and raw.exists() else {}
        if shares and args.profile_out is not None:
            shutil.copy(raw, args.profile_out)

    span_s = max((last_ms - first_ms) / 1000, 1e-3)
    rate = (args.events - 1) / span_s
    cpu = cpu_last - cpu_first
    print(f"events:                 {args.events:,} requests ({args.partitions} partitions)")
    print(f"produce:                {args.events / produce_s:,.0f} events/s")
    print(f"first->last CostEvent:  {span_s:.2f} s")
    print(f"throughput:             {rate:,.0f} request events/s")
    print(f"worker CPU:             {cpu:.2f} s ({cpu / args.events * 1e6:,.0f} us/event)")
    print(f"worker CPU, drained:    {cpu_end - cpu_first:.2f} s (after the last cost, 3 s quiet)")
    print(f"total cost:             {total_cost} USD, {unpriced:,} unpriced")
    print("outputs:                " + ", ".join(f"{t}={counts[t]:,}" for t in OUTPUTS))
    print(f"webhook posts:          {_Webhook.count:,}")
    if shares:
        print("profile (share of py-spy samples):")
        for owner, share in shares.items():
            print(f"  {owner:<40} {share:6.1%}")
    met = "met" if rate >= TARGET_EVENTS_PER_S and not args.profile else "NOT met"
    print(f"target:                 >= {TARGET_EVENTS_PER_S:,}/s: {met}")
    return 0


def worker_pid(process: subprocess.Popen[bytes], under_py_spy: bool) -> int:
    """The worker's pid: the `-m processors` process under py-spy when profiling."""
    if not under_py_spy:
        return process.pid
    for _ in range(300):
        todo = [process.pid]
        while todo:
            pid = todo.pop()
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().endswith(b"-m\0processors\0"):
                    return pid
                todo += map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
            except OSError:
                continue
        time.sleep(0.1)
    raise RuntimeError("no worker process under py-spy")


def _field(value: bytes, start: bytes, end: bytes) -> str | None:
    at = value.find(start)
    if at < 0:
        return None
    at += len(start)
    return value[at : value.index(end, at)].decode()


if __name__ == "__main__":
    sys.exit(main())
