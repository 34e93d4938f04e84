"""Processors throughput: request events on Kafka -> CostEvents, with every agent on.

Starts the embedded broker (tansu) in a temp dir, creates the topics, publishes budgets on
the control topic (org, team and key budgets, some small enough to go hard, so budgets
and their alerts are busy), starts `--workers` processors workers (one consumer group) as
`meterline processors` runs them (`python -m processors`, their own settings and topic
prefix; alerts on, to a local webhook that answers 200), waits until every budget's state
is published (the workers joined and restored their budgets), then produces N realistic
RequestEvents (several orgs, keys and models, priced and unpriced, agent-loop sessions
with repeated prompts, a few failing requests), serialized beforehand so producing takes
a fraction of the run. It times the workers from the first CostEvent (its record
timestamp) until ALL the work is done: every cost out and the group's committed offsets
at the end of the requests, costs and budget-spend topics (the budgets' accounting
included). CPU is the workers' own, from /proc, over the same span.

`--rate R --seconds S` instead produces R requests/s for S seconds and samples the
group's lag on the requests topic every 100 ms (p50/p99/max, messages), and each
request's delay from its record to its CostEvent's (p50/p99, ms).

    .venv/bin/python bench/processors_throughput.py [--events 50000] [--workers 2] [--profile]
    .venv/bin/python bench/processors_throughput.py --rate 1000 --seconds 30

`--profile` runs the (first) worker under py-spy (when installed) and prints each agent's share
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
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import consumer_config, create_topics, producer_config
from meterline.ports import free_port
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


def produce_budgets(settings: Settings) -> None:
    producer = Producer(producer_config(settings))
    for record in budgets():
        key = f"budget:{record.budget_id}"
        producer.produce(settings.topic(CONTROL), record.to_json(), key=key)
    producer.flush(30)


def serialized_events(n: int) -> list[tuple[str, bytes]]:
    """(key, value) of N RequestEvents, built before the run so producing is cheap."""
    now = datetime.now(UTC) - timedelta(seconds=n / 1000 + 60)
    rng = random.Random(1)
    return [(e.key_id or "", e.to_json()) for e in (request_event(i, now, rng) for i in range(n))]


def produce_events(
    settings: Settings, events: list[tuple[str, bytes]], rate: float | None = None
) -> float:
    """Produce `events` (at `rate` per second, or as fast as possible); returns seconds."""
    producer = Producer(producer_config(settings, **{"linger.ms": 5 if rate else 20}))
    topic = settings.topic(REQUESTS)
    started = time.perf_counter()
    for i, (key, value) in enumerate(events):
        if rate:
            wait = started + i / rate - time.perf_counter()
            if wait > 0:
                producer.poll(0)
                time.sleep(wait)
        while True:
            try:
                producer.produce(topic, value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    return time.perf_counter() - started


class GroupProgress:
    """The processors' group: how much each worker handled (its /metrics) and its lag."""

    def __init__(self, settings: Settings, ports: list[int]) -> None:
        self._urls = [f"http://{settings.host}:{port}/metrics" for port in ports]
        self._settings = settings
        self._consumer = Consumer(consumer_config(settings, group_id=settings.processors.app_id))
        self._requests = [
            TopicPartition(settings.topic(REQUESTS), p)
            for p in range(settings.effective_topic_partitions)
        ]

    def handled(self, stage: str) -> int:
        """Messages the workers' `stage` handled (a stage's counter, summed)."""
        total = 0
        for url in self._urls:
            try:
                text = httpx.get(url, timeout=2).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                if line.startswith(
                    f'meterline_processors_events_processed_total{{agent="{stage}"}}'
                ):
                    total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def request_lag(self) -> int:
        """Requests produced but not committed by the group yet."""
        committed = self._consumer.committed(self._requests, timeout=5)
        lag = 0
        for tp in committed:
            high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)[1]
            lag += max(high - max(tp.offset, 0), 0)
        return lag

    def close(self) -> None:
        self._consumer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else 0.0


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
    parser.add_argument("--workers", type=int, default=1, help="processors workers (one group)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rate", type=float, help="requests/s to produce (sustained mode)")
    parser.add_argument("--seconds", type=float, default=30.0, help="sustained mode: how long")
    parser.add_argument("--profile", action="store_true", help="run the worker under py-spy")
    parser.add_argument("--profile-out", type=Path, help="keep py-spy's raw profile here")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    n = int(args.rate * args.seconds) if args.rate else args.events

    webhook = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{webhook.server_address[1]}/hook"
    events = serialized_events(n)
    sent_at = {}  # request_id -> produce time (ms), sustained mode
    with tempfile.TemporaryDirectory(prefix="meterline-bench-proc-") as tmp:
        broker = EmbeddedBroker(free_port())
        broker.start()
        workers: list[subprocess.Popen[bytes]] = []
        try:
            settings = Settings(
                kafka_bootstrap=broker.bootstrap,
                data_dir=Path(tmp) / "data",
                topic_prefix="benchproc.",
                topic_partitions=args.partitions,
                kafka_session_timeout_ms=6000,
                ingest_port=free_port(),  # nothing listens: the reconcile gives up quickly
                processors={
                    "app_id": "bench-processors",
                    "budget": {"reconcile_timeout_s": 1.0, "tick_interval_s": 1.0},
                    "alert": {"webhooks": [hook_url], "security_webhooks": [hook_url]},
                },
            )
            create_topics(settings)
            produce_budgets(settings)

            raw = Path(tmp) / "profile.txt"
            ports, pids, logs = [], [], []
            for i in range(args.workers):
                port = free_port()
                own = settings.model_copy(
                    update={"processors_port": port, "data_dir": Path(tmp) / f"data{i}"}
                )
                env = {**os.environ, **own.child_env()}
                env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
                command = [sys.executable, "-m", "processors"]
                profiled = args.profile and i == 0 and shutil.which("py-spy") is not None
                if args.profile and not profiled and i == 0:
                    print("py-spy not installed: no profile", file=sys.stderr)
                if profiled:
                    command = ["py-spy", "record", "--format", "raw", "-r", "200"]
                    command += ["-o", str(raw), "--nonblocking", "--"]
                    command += [sys.executable, "-m", "processors"]
                log_path = Path(tmp) / f"worker{i}.log"
                with log_path.open("ab") as log:
                    workers.append(
                        subprocess.Popen(
                            command, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT
                        )
                    )
                ports.append(port)
                logs.append(log_path)
                pids.append(worker_pid(workers[-1], profiled))

            consumer = Consumer(consumer_config(settings, group_id=None))
            consumer.assign(
                [
                    TopicPartition(settings.topic(name), p, OFFSET_BEGINNING)
                    for name in OUTPUTS + ([REQUESTS] if args.rate else [])
                    for p in range(settings.effective_topic_partitions)
                ]
            )
            counts: collections.Counter[str] = collections.Counter()
            kinds: collections.Counter[str] = collections.Counter()  # anomalies by kind

            def count(message: Message) -> str:
                topic = message.topic()[prefix:]
                counts[topic] += 1
                if topic == ANOMALIES:
                    kinds[_field(message.value() or b"", b'"kind":"', b'"') or "?"] += 1
                return topic

            request_ms: dict[str, int] = {}  # sustained mode: request_id -> record time
            cost_ms: dict[str, int] = {}
            prefix = len(settings.topic_prefix)
            deadline = time.monotonic() + args.timeout

            def failed() -> bool:
                if time.monotonic() < deadline and all(w.poll() is None for w in workers):
                    return False
                print(f"stopped with {dict(counts)}", file=sys.stderr)
                for log_path in logs:
                    print(log_path.read_text()[-3000:], file=sys.stderr)
                return True

            # Ready: every budget's state is out (the group formed, budgets restored).
            budget_ids: set[str] = set()
            while len(budget_ids) < len(budgets()):
                if failed():
                    return 1
                for message in consumer.consume(1000, 0.2):
                    if message.error() is None and message.topic()[prefix:] == BUDGETS:
                        budget_ids.add((message.key() or b"").decode())
            counts.clear()

            progress = GroupProgress(settings, ports)
            lags: list[int] = []
            producing = threading.Thread(
                target=lambda: sent_at.update(produced=produce_events(settings, events, args.rate))
            )
            producing.start()
            first_ms = last_ms = 0
            cpu_first = 0.0
            total_cost = Decimal(0)
            unpriced = 0
            next_sample = time.monotonic()
            while counts[COSTS] < n:
                if failed():
                    return 1
                if args.rate and time.monotonic() >= next_sample:
                    lags.append(progress.request_lag())
                    next_sample += 0.1
                for message in consumer.consume(10_000, 0.05):
                    if message.error() is not None:
                        continue
                    topic = count(message)
                    ts = message.timestamp()[1]
                    value = message.value() or b""
                    if args.rate and topic in (REQUESTS, COSTS):
                        request_id = _field(value, b'"request_id":"', b'"') or ""
                        (request_ms if topic == REQUESTS else cost_ms)[request_id] = ts
                    if topic != COSTS:
                        continue
                    if first_ms == 0:
                        first_ms, cpu_first = ts, sum(map(cpu_seconds, pids))
                    last_ms = max(last_ms, ts)
                    total_cost += Decimal(_field(value, b'"total_cost":"', b'"') or "0")
                    unpriced += b'"priced":false' in value
            producing.join()
            # Done: every cost out and every share of them counted by the budgets' owners.
            # So are the detectors' stages behind the internal topics (drift's scopes,
            # agent-loop sessions): all requests windowed, the sessions' steps handled.
            handled_before = (-1, -1)
            while True:
                if failed():
                    return 1
                for message in consumer.consume(10_000, 0.05):
                    if message.error() is None:
                        count(message)
                handled = (progress.handled("budget_spend"), progress.handled("agentloop"))
                fanned = progress.handled("budgets")
                windowed = progress.handled("drift")
                if fanned >= n and windowed >= n and handled == handled_before:
                    break
                handled_before = handled
            done_s = time.time()
            cpu_done = sum(map(cpu_seconds, pids))
            # Let the other outputs (budgets, alerts) drain for a moment, then count them.
            quiet_until = time.monotonic() + 3.0
            while time.monotonic() < quiet_until:
                for message in consumer.consume(10_000, 0.2):
                    if message.error() is None:
                        count(message)
                        quiet_until = time.monotonic() + 2.0
            consumer.close()
            progress.close()
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(2)  # SIGINT: py-spy writes its profile, Faust stops
            for worker in workers:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(10)
            broker.stop()
            webhook.shutdown()
        shares_profile = profile_shares(raw) if args.profile and raw.exists() else {}
        if shares_profile and args.profile_out is not None:
            shutil.copy(raw, args.profile_out)

    span_s = max(done_s - first_ms / 1000, 1e-3)
    rate = n / span_s
    cpu = cpu_done - cpu_first
    print(f"events:                 {n:,} requests, {args.workers} worker(s), ", end="")
    print(f"{args.partitions} partitions")
    print(f"produce:                {n / sent_at['produced']:,.0f} events/s")
    print(f"first cost -> all done: {span_s:.2f} s ", end="")
    print(f"(costs out in {(last_ms - first_ms) / 1000:.2f} s)")
    print(f"throughput:             {rate:,.0f} request events/s, ", end="")
    print(f"{rate / args.workers:,.0f} per worker")
    print(f"workers' CPU:           {cpu:.2f} s ({cpu / n * 1e6:,.0f} us/event)")
    if args.rate:
        p50, p99 = percentile(lags, 0.5), percentile(lags, 0.99)
        most = max(lags, default=0)
        print(f"request lag (messages): p50 {p50:,.0f}, p99 {p99:,.0f}, max {most:,}")
        delays = [cost_ms[r] - request_ms[r] for r in cost_ms if r in request_ms]
        p50, p99 = percentile(delays, 0.5), percentile(delays, 0.99)
        print(f"request -> cost (ms):   p50 {p50:,.0f}, p99 {p99:,.0f} ({len(delays):,})")
    print(f"total cost:             {total_cost} USD, {unpriced:,} unpriced")
    print("outputs:                " + ", ".join(f"{t}={counts[t]:,}" for t in OUTPUTS))
    print("anomalies by kind:      " + ", ".join(f"{k}={n:,}" for k, n in sorted(kinds.items())))
    print(f"webhook posts:          {_Webhook.count:,}")
    if shares_profile:
        print("profile (share of py-spy samples, first worker):")
        for owner, share in shares_profile.items():
            print(f"  {owner:<40} {share:6.1%}")
    per_worker = rate / args.workers
    met = "met" if per_worker >= TARGET_EVENTS_PER_S and not args.profile else "NOT met"
    print(f"target:                 >= {TARGET_EVENTS_PER_S:,}/s per worker: {met}")
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
