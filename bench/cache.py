"""Response cache costs in-process (gateway/cache, issue 16): the app over in-memory
collaborators and the mock provider's ASGI app as upstream, as bench/gateway_inprocess.py.

    .venv/bin/python bench/cache.py [--requests 4000] [--rounds 5]

- exact miss: the cache path alone (lookup + fill of a request never seen: canonical JSON,
  BLAKE2b, policy, store) in CPU us per request, and the whole gateway's CPU per unique
  request with the cache off vs exact (interleaved rounds; the difference is noisier);
- hit: wall time the gateway takes to answer a hit (server side, c=1) next to the same
  request through the upstream, non-streaming and streaming;
- semantic miss: what the embedding call adds to a miss (CPU and wall; the mock answers
  the embedding in process, so a real embedding API adds its network time on top);
- vector search: one cosine search over N entries of 256 dimensions, as the index runs it
  (exact, HNSW from ANN_MIN_ENTRIES), and the exact numpy product alone.

Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gateway_inprocess import SECRET, _call  # noqa: E402

from gateway.apis import CHAT  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.cache.vectors import ANN_MIN_ENTRIES, VectorIndex, unit  # noqa: E402
from gateway.collaborators import MemoryControlPublisher, StaticViews  # noqa: E402
from gateway.emit import MemoryEmitter  # noqa: E402
from gateway.keys import KeyInfo  # noqa: E402
from gateway.providers import InProcessUpstream  # noqa: E402
from gateway.record import RequestRecord  # noqa: E402
from gateway.runtime import GatewayRuntime  # noqa: E402
from meterline.mock_provider import create_app as create_mock_app  # noqa: E402
from meterline.settings import ProviderConfig, Settings  # noqa: E402
from schemas.ids import hash_key  # noqa: E402
from schemas.subjects import attribution_subjects  # noqa: E402


def _body(i: int, stream: bool = False) -> bytes:
    return orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a terse assistant for the finance team."},
                {"role": "user", "content": f"Summarize invoice backlog number {i}, please."},
            ],
            "temperature": 0.2,
            "max_tokens": 64,
            **({"stream": True} if stream else {}),
        }
    )


async def _gateway(mode: str, data_dir: Path) -> tuple[Any, GatewayRuntime]:
    settings = Settings(
        data_dir=data_dir,
        gateway={"cache": {"mode": mode, "max_entries": 100_000, "max_bytes": 1 << 30}},
        providers=[ProviderConfig(name="mock-openai", base_url="http://upstream/v1", models=["*"])],
    )
    runtime = GatewayRuntime(
        settings,
        emitter=MemoryEmitter(),
        upstream=InProcessUpstream(create_mock_app()),
        views=StaticViews,
        publisher=MemoryControlPublisher(),
    )
    runtime.keys.apply({"key_id": "key_bench", "key_hash": hash_key(SECRET), "org": "acme"})
    await runtime.start()
    return create_app(settings, runtime=runtime), runtime


async def cache_path_us(runtime: GatewayRuntime, requests: int) -> float:
    """CPU us of lookup + fill for requests never seen (the exact miss's own cost)."""
    subjects = attribution_subjects("key_bench", "acme", "", "", "")
    key = KeyInfo(key_id="key_bench", key_hash="", org="acme", subjects=subjects)
    parsed = [CHAT.parse(_body(10_000_000 + i)) for i in range(requests)]
    headers = [(b"authorization", b"Bearer x"), (b"content-type", b"application/json")]
    records = [RequestRecord(endpoint=CHAT.endpoint, key=key) for _ in parsed]
    answer = b'{"id":"x","choices":[]}'
    cache = runtime.cache
    started = time.process_time()
    for record, request in zip(records, parsed, strict=True):
        lookup = await cache.lookup(headers, record, CHAT, request)
        assert lookup is not None and lookup.answer is None
        lookup.parts.append(answer)
        cache.fill(lookup, record)
    return (time.process_time() - started) / requests * 1e6


async def cpu_per_request(app: Any, bodies: list[bytes]) -> float:
    started = time.process_time()
    for body in bodies:
        assert await _call(app, body) == 200
    return (time.process_time() - started) / len(bodies) * 1e6


async def wall_ms(app: Any, body: bytes, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        assert await _call(app, body) == 200
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _q(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1]


async def run(requests: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        off_app, off = await _gateway("off", Path(tmp) / "off")
        exact_app, exact = await _gateway("exact", Path(tmp) / "exact")
        semantic_app, semantic = await _gateway("semantic", Path(tmp) / "semantic")
        gc.freeze()
        try:
            for app in (off_app, exact_app, semantic_app):  # warm-up
                for i in range(200):
                    await _call(app, _body(-i - 1))

            print("## Exact miss: gateway CPU added")
            path = [await cache_path_us(exact, requests) for _ in range(rounds)]
            print(
                f"cache path alone (lookup + fill, miss): median {statistics.median(path):.1f} us"
            )
            # Alternate short batches so both see the same machine load; median of pairs.
            deltas, offs, ons = [], [], []
            batch, serial = 250, 0
            for _ in range(max(1, requests * rounds // batch)):
                unique = [_body(serial + i) for i in range(batch * 2)]
                serial += batch * 2
                off_us = await cpu_per_request(off_app, unique[:batch])
                on_us = await cpu_per_request(exact_app, unique[batch:])
                offs.append(off_us)
                ons.append(on_us)
                deltas.append(on_us - off_us)
            print(
                f"whole gateway per unique request ({len(deltas)} alternating batches of "
                f"{batch}): off {statistics.median(offs):.1f} us, exact "
                f"{statistics.median(ons):.1f} us, median paired difference "
                f"{statistics.median(deltas):+.1f} us (quartiles "
                f"{_q(deltas, 25):+.1f} / {_q(deltas, 75):+.1f})"
            )

            print("\n## Hit: gateway wall time at c=1 (server side, in process)")
            for stream in (False, True):
                hit_body = _body(-424242, stream)
                await _call(exact_app, hit_body)  # fill
                hits = await wall_ms(exact_app, hit_body, requests)
                upstream = await wall_ms(off_app, hit_body, requests)
                kind = "stream" if stream else "non-stream"
                print(
                    f"{kind}: hit p50 {_q(hits, 50):.3f} ms p99 {_q(hits, 99):.3f} ms; "
                    f"through the upstream p50 {_q(upstream, 50):.3f} ms"
                )

            print("\n## Semantic miss: the embedding call")
            count = max(200, requests // 10)
            bodies = [_body(20_000_000 + i) for i in range(count * 2)]
            exact_cpu = await cpu_per_request(exact_app, bodies[:count])
            semantic_cpu = await cpu_per_request(semantic_app, bodies[count:])
            walls_exact, walls_semantic = [], []
            for i in range(count):
                started = time.perf_counter()
                await _call(exact_app, _body(30_000_000 + i))
                walls_exact.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                await _call(semantic_app, _body(40_000_000 + i))
                walls_semantic.append((time.perf_counter() - started) * 1000)
            print(
                f"CPU per miss: exact {exact_cpu:.0f} us, semantic {semantic_cpu:.0f} us "
                f"(+{semantic_cpu - exact_cpu:.0f} us: embedding request through routing, its "
                "RequestEvent, the in-process mock's embedding, the search)"
            )
            print(
                f"wall per miss p50: exact {_q(walls_exact, 50):.3f} ms, semantic "
                f"{_q(walls_semantic, 50):.3f} ms (+ a real embedding API's round trip)"
            )
        finally:
            for runtime in (off, exact, semantic):
                await runtime.aclose()

    search_table()


def search_table(sizes: tuple[int, ...] = (1_000, 4_000, 10_000, 100_000)) -> None:
    """One search per size as the index runs it (exact below ANN_MIN_ENTRIES, HNSW from
    there) and the exact numpy product alone, 256 dimensions."""
    print(f"\n## Vector search, 256 dimensions (HNSW from {ANN_MIN_ENTRIES:,} entries)")
    rng = np.random.default_rng(1)
    for size in sizes:
        index = VectorIndex()
        matrix = rng.normal(size=(size, 256)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        for i, vector in enumerate(matrix):
            index.add(b"p", i.to_bytes(4, "big"), vector)
        query = unit(list(rng.normal(size=256)))
        assert query is not None
        started = time.perf_counter()
        for _ in range(200):
            index.nearest(b"p", query)
        as_run = (time.perf_counter() - started) / 200 * 1e6
        started = time.perf_counter()
        for _ in range(200):
            int(np.argmax(matrix @ query))
        exact = (time.perf_counter() - started) / 200 * 1e6
        how = "HNSW" if size >= ANN_MIN_ENTRIES else "exact"
        print(f"{size:,} entries: {as_run:,.0f} us per search ({how}); exact {exact:,.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(run(options.requests, options.rounds))


if __name__ == "__main__":
    main()
