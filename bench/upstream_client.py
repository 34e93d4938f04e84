"""The upstream client's CPU per call: Meterline's (`gateway/providers/transport.py`)
against aiohttp's `ClientSession`, the same POST to the same minimal HTTP/1.1 server.

    .venv/bin/python bench/upstream_client.py [--requests 20000] [--concurrency 16] [--rounds 3]

The server (a raw asyncio protocol with a fixed answer) runs in its own process, so the
figure is the client process's CPU time per request: its HTTP work plus the event loop's.
Rounds alternate the two clients; medians are printed. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.providers.transport import Target, UpstreamClient  # noqa: E402

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
SERVER = r"""
import asyncio, sys, uvloop
BODY = b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":' + (
    b'{"role":"assistant","content":"hello"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}')
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
ANSWER = HEAD % len(BODY) + BODY
class Answer(asyncio.Protocol):
    def connection_made(self, transport): self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(self.buffer) < end + 4 + length: return
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(ANSWER)
async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
uvloop.run(main())
"""


async def _ours(url: str, requests: int, concurrency: int) -> float:
    client, target = UpstreamClient(), Target.of(url)
    headers = b"authorization: Bearer x\r\ncontent-type: application/json\r\n"

    async def one() -> None:
        response = await client.request(
            b"POST", target, headers, BODY, connect_timeout_s=5, first_byte_timeout_s=30
        )
        async with response:
            await response.read(30)

    cpu = await _run(one, requests, concurrency)
    await client.aclose()
    return cpu


async def _aiohttp(url: str, requests: int, concurrency: int) -> float:
    session = aiohttp.ClientSession(skip_auto_headers=("User-Agent",))
    headers = {"authorization": "Bearer x", "content-type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30, connect=5, sock_read=30)

    async def one() -> None:
        async with session.post(url, data=BODY, headers=headers, timeout=timeout) as response:
            await response.read()

    cpu = await _run(one, requests, concurrency)
    await session.close()
    return cpu


async def _run(one, requests: int, concurrency: int) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    await asyncio.gather(*(worker(50) for _ in range(concurrency)))  # warm the pool
    started = time.process_time()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    return (time.process_time() - started) / (requests // concurrency * concurrency) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1/chat/completions"
        figures: dict[str, list[float]] = {"meterline": [], "aiohttp": []}
        for round_ in range(options.rounds):
            order = [("meterline", _ours), ("aiohttp", _aiohttp)]
            for name, run in order if round_ % 2 == 0 else order[::-1]:
                cpu = uvloop.run(run(url, options.requests, options.concurrency))
                figures[name].append(cpu)
                print(f"round {round_ + 1}: {name:9} {cpu:7.1f} us CPU/request", flush=True)
        ours, theirs = (statistics.median(figures[n]) for n in ("meterline", "aiohttp"))
        print(f"\nmedian over {options.rounds} rounds, c={options.concurrency}:")
        print(
            f"  meterline {ours:.1f} us, aiohttp {theirs:.1f} us CPU/request ({theirs / ours:.1f}x)"
        )
    finally:
        server.kill()


if __name__ == "__main__":
    main()
