"""Pipeline throughput: events on Kafka -> rows in ClickHouse, through the ingest sink.

Starts the embedded broker (tansu) and the embedded ClickHouse engine (chDB) in a temp
dir, produces N events, then runs the real sink (SinkConsumer + ClickHouseSink: columnar
validation with pydantic fallback, in-batch and stored event_id dedupe, Arrow insert,
commit) and times it from the first consumed message until every row is in ClickHouse.

    .venv/bin/python bench/pipeline_throughput.py [--events 200000] [--kind requests|costs|mixed]
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from confluent_kafka import Producer

from ingest.sink.clickhouse import ClickHouseSink
from ingest.sink.consumer import SinkConsumer
from meterline.embedded.broker import EmbeddedBroker
from meterline.kafka import create_topics, producer_config
from meterline.ports import free_port
from meterline.settings import Settings
from meterline.warehouse import SharedClient, connect, migrate
from schemas.events.v1 import CostEvent, RequestEvent

TARGET_ROWS_PER_S = 150_000  # one sink consumer, mixed events (issue 13)


def request_event(i: int, now: datetime) -> RequestEvent:
    at = now + timedelta(milliseconds=i)  # produced in time order, like live traffic
    return RequestEvent(
        request_id=f"req-{i}",
        ts=at,
        ts_start=at,
        ts_end=at + timedelta(milliseconds=420),
        latency_ms=420.0,
        ttft_ms=95.0,
        key_id=f"key-{i % 200}",
        org=f"org-{i % 5}",
        team=f"team-{i % 20}",
        project=f"project-{i % 50}",
        user=f"user-{i % 1000}",
        session_id=f"sess-{i // 10}",
        provider="openai",
        model_requested="gpt-4o-mini",
        model_used="gpt-4o-mini-2024-07-18",
        endpoint="/v1/chat/completions",
        status_code=200,
        input_tokens=300 + i % 700,
        output_tokens=50 + i % 300,
        prompt_hash=f"{i:064x}",
        prompt_chars=1200,
        response_chars=400,
        finish_reason="stop",
        enforcement={"rate_limit": "ok"},
    )


def cost_event(i: int, now: datetime, rng: random.Random) -> CostEvent:
    return CostEvent(
        request_id=f"req-{i}",
        request_ts=now + timedelta(milliseconds=i),
        key_id=f"key-{i % 200}",
        org=f"org-{i % 5}",
        team=f"team-{i % 20}",
        project=f"project-{i % 50}",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=300,
        output_tokens=50,
        input_cost=Decimal("0.000045"),
        output_cost=Decimal("0.00003"),
        total_cost=Decimal(rng.randint(1, 10**6)) / Decimal(10**9),
        price_source="genai-prices@bench",
        priced=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--kind", choices=["requests", "costs", "mixed"], default="mixed")
    parser.add_argument("--batch-rows", type=int, default=20_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="meterline-bench-") as tmp:
        broker = EmbeddedBroker(free_port())
        broker.start()
        try:
            settings = Settings(
                kafka_bootstrap=broker.bootstrap,
                clickhouse_url=f"chdb://{Path(tmp) / 'clickhouse'}",
                clickhouse_database="bench",
                topic_prefix="bench.",
                topic_partitions=3,
                ingest={"sink": {"group_id": "bench-sink", "batch_rows": args.batch_rows}},
            )
            create_topics(settings)
            client = connect(settings)
            migrate(client, settings.clickhouse_database)
            shared = SharedClient(client, settings.clickhouse_database)

            now = datetime.now(UTC) - timedelta(minutes=10)
            rng = random.Random(1)
            kinds = {"requests": ["requests"], "costs": ["costs"], "mixed": ["requests", "costs"]}
            topics = kinds[args.kind]
            producer = Producer(producer_config(settings, **{"linger.ms": 20}))
            started = time.perf_counter()
            expected_cost = Decimal(0)
            for i in range(args.events):
                topic = topics[i % len(topics)]
                if topic == "requests":
                    event = request_event(i, now)
                else:
                    event = cost_event(i, now, rng)
                    expected_cost += event.total_cost
                key = event.key_id.encode() if event.key_id else None
                while True:
                    try:
                        producer.produce(settings.topic(topic), event.to_json(), key=key)
                        break
                    except BufferError:
                        producer.poll(0.05)
                if i % 10_000 == 0:
                    producer.poll(0)
            producer.flush(60)
            produce_s = time.perf_counter() - started

            sink = ClickHouseSink(shared)
            sink.setup()
            consumer = SinkConsumer(settings, sink)
            stop = threading.Event()
            thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
            joined_at: float | None = None
            sink_started = time.perf_counter()
            thread.start()
            while True:
                if joined_at is None and consumer.status.snapshot()["messages_consumed"] > 0:
                    joined_at = time.perf_counter()
                    joined_cpu = time.process_time()
                # The sink's own counter of inserted rows: polling ClickHouse here would
                # compete for the client lock; the row count is checked once at the end.
                rows = sum(sink.rows_written.values())
                if rows >= args.events:
                    break
                if time.perf_counter() - sink_started > 600:
                    print(f"timed out with {rows} rows", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            done_at = time.perf_counter()
            done_cpu = time.process_time()
            stop.set()
            thread.join(60)
            if joined_at is None:
                joined_at, joined_cpu = sink_started, done_cpu
            total_cost = shared.query_rows("SELECT sum(cost_usd) FROM bench.spend_daily")[0][0]
            stored = sum(
                shared.query_rows(f"SELECT count() FROM bench.{table}")[0][0]
                for table in ("requests", "costs")
            )
        finally:
            broker.stop()

    sink_s = done_at - joined_at
    rate = args.events / sink_s
    print(f"events:                 {args.events:,} ({args.kind})")
    print(f"produce:                {args.events / produce_s:,.0f} events/s ({produce_s:.1f} s)")
    print(f"group join:             {joined_at - sink_started:.1f} s (not counted)")
    print(f"sink topic->ClickHouse: {rate:,.0f} rows/s ({sink_s:.2f} s)")
    # CPU seconds of this process meanwhile (consumer, writer and librdkafka threads, the
    # chDB engine; not the broker): steadier than the wall clock on a shared machine.
    sink_cpu = done_cpu - joined_cpu
    print(f"sink CPU:               {sink_cpu:.2f} s ({sink_cpu / args.events * 1e6:.1f} us/row)")
    print(f"rows in ClickHouse:     {stored:,}")
    print(f"spend_daily total:      {total_cost} (expected {expected_cost})")
    print(
        f"target:                 >= {TARGET_ROWS_PER_S:,} rows/s: "
        f"{'met' if rate >= TARGET_ROWS_PER_S else 'NOT met'}"
    )
    print(
        "command: .venv/bin/python bench/pipeline_throughput.py "
        f"--events {args.events} --kind {args.kind}"
    )
    return 0 if Decimal(total_cost) == expected_cost and stored == args.events else 2


if __name__ == "__main__":
    sys.exit(main())
