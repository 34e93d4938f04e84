"""Real servers for gateway tests: uvicorn on free ports, the mock provider, helpers that
create keys over the admin API and read events back from the broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from gateway.app import create_app
from meterline.kafka import consumer_config
from meterline.mock_provider import create_app as create_mock_app
from meterline.settings import ProviderConfig, Settings, merged
from schemas.topics import REQUESTS

ADMIN = {"Authorization": "Bearer test-admin-token"}


class ServerThread:
    """One uvicorn server in a background thread; port 0 lets the OS pick a free one."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.port = port
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)


@dataclass
class RunningGateway:
    settings: Settings
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.url

    def create_key(self, **body: Any) -> dict[str, Any]:
        body.setdefault("org", "acme")
        response = httpx.post(f"{self.url}/admin/keys", json=body, headers=ADMIN, timeout=15)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(scope="session")
def mock_url() -> Iterator[str]:
    with ServerThread(create_mock_app()) as server:
        yield server.url


@pytest.fixture
def start_gateway(make_settings, broker, mock_url) -> Iterator[Callable[..., RunningGateway]]:
    """Start a gateway against the mock; `broker_override=` picks another (or no) broker."""
    stack = ExitStack()

    def start(
        settings: Settings | None = None, *, wait_ready: bool = True, **overrides: Any
    ) -> RunningGateway:
        if settings is None:
            overrides.setdefault(
                "providers",
                [
                    ProviderConfig(
                        name="mock",
                        base_url=f"{mock_url}/v1",
                        api_key_env="METERLINE_TEST_UPSTREAM_KEY",
                        models=["mock-gpt", "mock-gpt-mini", "mock-embed", "*"],
                        price_provider="openai",
                    )
                ],
            )
            overrides = merged({"gateway": {"upstream_timeout_s": 1.0}}, overrides)
            settings = make_settings(broker, **overrides)
        server = stack.enter_context(ServerThread(create_app(settings)))
        if wait_ready:  # its views loaded (healthz 200), as `meterline up` waits for
            deadline = time.monotonic() + 30
            while httpx.get(f"{server.url}/healthz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, "the gateway never became ready"
                time.sleep(0.05)
        return RunningGateway(settings, server)

    yield start
    stack.close()


def _read_events(
    settings: Settings,
    want: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float = 20.0,
    topic: str = REQUESTS,
) -> list[dict[str, Any]]:
    """All events on the topic (partition by partition, in order) once `want` holds."""
    consumer = Consumer(consumer_config(settings, None))
    full = settings.topic(topic)
    metadata = consumer.list_topics(full, timeout=10)
    consumer.assign(
        [TopicPartition(full, p, OFFSET_BEGINNING) for p in metadata.topics[full].partitions]
    )
    by_partition: dict[int, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                event = orjson.loads(message.value())
                event["_key"] = (message.key() or b"").decode()
                by_partition.setdefault(message.partition(), []).append(event)
            events = [e for part in sorted(by_partition) for e in by_partition[part]]
            if want(events):
                return events
    finally:
        consumer.close()
    raise AssertionError(f"wanted events did not arrive within {timeout_s}s; got {events!r}")


@pytest.fixture
def read_events() -> Callable[..., list[dict[str, Any]]]:
    """read_events(settings, want, timeout_s) -> every event on the topic once `want` holds."""
    return _read_events


@pytest.fixture
def events_for() -> Callable[..., list[dict[str, Any]]]:
    """events_for(settings, request_ids) -> the RequestEvents with those ids, in id order."""

    def find(
        settings: Settings, request_ids: list[str], timeout_s: float = 20.0
    ) -> list[dict[str, Any]]:
        wanted = set(request_ids)
        events = _read_events(
            settings, lambda evs: wanted <= {e["request_id"] for e in evs}, timeout_s
        )
        by_id = {e["request_id"]: e for e in events}
        return [by_id[r] for r in request_ids]

    return find


# Two providers on the one mock, as `meterline up --demo` has them: Anthropic's Messages API
# for claude-* and OpenAI's for the rest, plus a routing group with an alias.
CLAUDE_GROUP = "claude-fast"
CLAUDE_ALIAS = "haiku"
CLAUDE_GROUP_MODEL = "claude-3-5-haiku-latest"


@pytest.fixture
def start_two_provider_gateway(
    start_gateway, make_settings, broker, mock_url
) -> Callable[..., RunningGateway]:
    """start() -> a gateway with providers `mock-openai` (kind openai, gpt-*/mock-*) and
    `mock-anthropic` (kind anthropic, claude-*) on the same mock, and the routing group
    `claude-fast` (alias `haiku`) served by `mock-anthropic` as `claude-3-5-haiku-latest`."""

    def start(**overrides: Any) -> RunningGateway:
        providers = [
            ProviderConfig(
                name="mock-openai",
                base_url=f"{mock_url}/v1",
                api_key_env="METERLINE_TEST_UPSTREAM_KEY",
                models=["gpt-*", "mock-*"],
                price_provider="openai",
            ),
            ProviderConfig(
                name="mock-anthropic",
                kind="anthropic",
                base_url=f"{mock_url}/v1",
                api_key_env="METERLINE_TEST_UPSTREAM_KEY",
                models=["claude-*"],
                price_provider="anthropic",
            ),
        ]
        group = {
            "name": CLAUDE_GROUP,
            "aliases": [CLAUDE_ALIAS],
            "deployments": [{"provider": "mock-anthropic", "model": CLAUDE_GROUP_MODEL}],
        }
        values = merged(
            {
                "providers": providers,
                "routing": {"groups": [group]},
                "gateway": {"upstream_timeout_s": 5.0},
            },
            overrides,
        )
        return start_gateway(make_settings(broker, **values))

    return start
