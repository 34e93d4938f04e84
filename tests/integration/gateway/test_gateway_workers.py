"""Several gateway processes on one port (issue 13): `meterline gateway --worker I` binds
the shared port with SO_REUSEPORT and its own port; each process keeps its own views."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from meterline.clients import AdminClient
from meterline.runtime import ServiceProcess, worker_processes
from meterline.settings import ProviderConfig, Settings
from meterline.workers import gateway_worker_port
from tests.conftest import free_port

pytestmark = pytest.mark.integration

CHAT_BODY = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
WORKERS = 2


def _chat(url: str, secret: str) -> int:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json=CHAT_BODY,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    ).status_code


def _wait(check, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return value


@pytest.fixture
def gateways(
    make_settings, broker, mock_url, tmp_path: Path
) -> Iterator[tuple[Settings, list[ServiceProcess]]]:
    settings: Settings = make_settings(
        broker,
        gateway_port=free_port(WORKERS + 1),
        gateway={"workers": WORKERS, "upstream_timeout_s": 5.0},
        providers=[
            ProviderConfig(
                name="mock",
                base_url=f"{mock_url}/v1",
                api_key_env="METERLINE_TEST_UPSTREAM_KEY",
                models=["*"],
                price_provider="openai",
            )
        ],
    )
    children: list[ServiceProcess] = worker_processes(settings, "gateway")
    env = {**os.environ, **settings.child_env(), "METERLINE_TEST_UPSTREAM_KEY": "sk-test"}
    try:
        for child in children:
            child.start(env)
        for child in children:
            child.wait_healthy(60)
        yield settings, children
    finally:
        for child in children:
            child.stop()


def test_two_processes_serve_one_port_each_with_its_own_views(gateways) -> None:
    settings, _ = gateways
    shared = f"http://{settings.host}:{settings.gateway_port}"
    own = [f"http://{settings.host}:{gateway_worker_port(settings, i)}" for i in range(WORKERS)]
    assert len({settings.gateway_port, *(gateway_worker_port(settings, i) for i in range(2))}) == 3

    # Both processes listen on the shared port: it keeps answering while either is busy,
    # and over many fresh connections the kernel hands some to each (SO_REUSEPORT).
    for _ in range(10):
        with httpx.Client() as fresh:
            assert fresh.get(f"{shared}/healthz", timeout=5).status_code == 200

    # A key created through the admin API on the shared port reaches one process; the other
    # learns it from the control topic: each has its own in-memory view.
    with AdminClient(shared, "test-admin-token", actor="test") as admin:
        created = admin.create_key(org="acme", team="ml")
        secret = created["key"]
        for url in own:
            _wait(lambda url=url: _chat(url, secret) == 200)
        assert _chat(shared, secret) == 200

        # A block reaches both processes through the enforcement topic.
        admin.block(f"key:{created['key_id']}", "test: scaled out")
        for url in own:
            _wait(lambda url=url: _chat(url, secret) == 403)
        for _ in range(6):
            assert _chat(shared, secret) == 403


def test_a_gateway_process_killed_leaves_the_other_serving_the_port(gateways) -> None:
    settings, children = gateways
    shared = f"http://{settings.host}:{settings.gateway_port}"
    own_1 = f"http://{settings.host}:{gateway_worker_port(settings, 1)}"
    assert children[0].process is not None
    children[0].process.kill()
    children[0].process.wait()
    assert httpx.get(f"{own_1}/healthz", timeout=5).status_code == 200
    for _ in range(10):  # fresh connections all land on the survivor
        with httpx.Client() as fresh:
            assert fresh.get(f"{shared}/healthz", timeout=5).status_code == 200
