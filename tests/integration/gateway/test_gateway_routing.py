"""Routing over real HTTP: the official SDKs -> a real gateway -> the real mock provider,
whose deployments fail on purpose (`/d/<name>/fail/<mode>/`), with every try counted by
the mock (`/mock/stats`) and every request's RequestEvent read back from the broker.

Each test gets its own gateway (its own breakers, metrics and topics) and its own mock
deployment names (`<name>-<tag>`), so the mock's counts are exact for it alone. Timing is
never asserted tightly: only loose upper bounds that a loaded machine still meets.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai
import pytest

from meterline.settings import ProviderConfig, merged
from schemas.events import RequestEvent
from tests.integration.gateway.conftest import ADMIN, RunningGateway

pytestmark = pytest.mark.integration

MODEL = "chat"  # the public model name of the first group in every test
MESSAGES = [{"role": "user", "content": "route me somewhere healthy"}]


@dataclass(frozen=True)
class Up:
    """One provider + deployment on the mock: `fail` is the mock's failure spec
    (`500`, `429:0.2x1`, `timeout`, ...), None for a healthy one."""

    name: str
    fail: str | None = None
    kind: str = "openai"
    weight: float = 1.0
    model: str = "mock-gpt"
    first_byte_s: float = 3.0


@dataclass(frozen=True)
class G:
    """A model group of `ups`, falling back to `fallbacks` (group names)."""

    name: str
    ups: tuple[Up, ...]
    fallbacks: tuple[str, ...] = ()


@dataclass
class Routed:
    gateway: RunningGateway
    key: str
    tag: str
    mock_url: str
    ups: dict[str, Up] = field(default_factory=dict)

    @property
    def settings(self):
        return self.gateway.settings

    def mock_name(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def received(self, name: str) -> int:
        """Requests the mock received for deployment `name` (every path)."""
        stats = httpx.get(f"{self.mock_url}/mock/stats", timeout=10).json()
        return sum(stats.get(self.mock_name(name), {}).values())

    def counts(self) -> dict[str, int]:
        return {name: self.received(name) for name in self.ups}

    def openai(self, timeout: float = 30.0) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.gateway.url}/v1", api_key=self.key, max_retries=0, timeout=timeout
        )

    def anthropic(self, timeout: float = 30.0) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.gateway.url, api_key=self.key, max_retries=0, timeout=timeout
        )

    def breakers(self) -> dict[str, str]:
        response = httpx.get(f"{self.gateway.url}/admin/routing", headers=ADMIN, timeout=10)
        assert response.status_code == 200, response.text
        return {d["deployment"]: d["breaker"] for d in response.json()["deployments"]}

    def metrics(self) -> str:
        response = httpx.get(f"{self.gateway.url}/metrics", timeout=10)
        assert response.status_code == 200
        return response.text

    def chat(self, **extra: Any) -> tuple[str, Any]:
        """One non-streaming chat completion: (request id, completion)."""
        raw = self.openai().chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, max_tokens=20, **extra
        )
        return raw.headers["x-request-id"], raw.parse()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the series `name` carrying (at least) these labels; None if absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.rindex("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def tries(event: dict) -> list[tuple[str, str, int, str]]:
    """The event's attempts as (group, deployment, status, error). A request served or
    failed by its first try carries no attempts (its deployment and status say all)."""
    return [(a["group"], a["deployment"], a["status"], a["error"]) for a in event["attempts"]]


def single_try(event: dict, deployment: str, status: int) -> bool:
    return event["attempts"] == [] and (event["deployment"], event["status_code"]) == (
        deployment,
        status,
    )


@pytest.fixture
def routed(start_gateway, mock_url, monkeypatch) -> Iterator[Callable[..., Routed]]:
    """routed(*groups, retry={...}, breaker={...}) -> a gateway routing `MODEL` (the first
    group) over mock deployments. Defaults keep tests fast: tiny backoffs, 2 tries per
    group, a breaker that does not open unless a test asks."""
    monkeypatch.setenv("METERLINE_TEST_UPSTREAM_KEY", "sk-upstream")

    def start(*groups: G, **routing: Any) -> Routed:
        tag = uuid.uuid4().hex[:8]
        ups = {up.name: up for g in groups for up in g.ups}
        providers = [
            ProviderConfig(
                name=up.name,
                kind=up.kind,
                base_url=f"{mock_url}/d/{up.name}-{tag}"
                + (f"/fail/{up.fail}" if up.fail else "")
                + "/v1",
                api_key_env="METERLINE_TEST_UPSTREAM_KEY",
                models=[],
                price_provider="anthropic" if up.kind == "anthropic" else "openai",
            )
            for up in ups.values()
        ]
        config = merged(
            {
                "strategy": "weighted",
                "retry": {
                    "attempts": 2,
                    "backoff_s": 0.01,
                    "max_backoff_s": 0.05,
                    "max_retry_after_s": 1.0,
                    "total_s": 20.0,
                },
                "breaker": {"failures": 1000, "cooldown_s": 30.0},
                "groups": [
                    {
                        "name": g.name,
                        "fallbacks": list(g.fallbacks),
                        "deployments": [
                            {
                                "provider": up.name,
                                "name": up.name,
                                "model": up.model,
                                "weight": up.weight,
                                "timeouts": {"first_byte_s": up.first_byte_s},
                            }
                            for up in g.ups
                        ],
                    }
                    for g in groups
                ],
            },
            routing,
        )
        gateway = start_gateway(
            providers=providers, routing=config, gateway={"upstream_timeout_s": 5.0}
        )
        key = gateway.create_key(org="acme", team="routing")["key"]
        return Routed(gateway, key, tag, mock_url, ups)

    yield start


def one_event(routed: Routed, events_for, request_id: str) -> dict:
    (event,) = events_for(routed.settings, [request_id])
    RequestEvent.model_validate(event)
    return event


PRIMARY_THEN_BACKUP = ("chat", "backup")


def fallback_pair(primary: Up, *, backup_kind: str = "openai") -> tuple[G, G]:
    return (
        G("chat", (primary,), fallbacks=("backup",)),
        G("backup", (Up("backup", kind=backup_kind, model="mock-backup"),)),
    )


# --- fallback across groups -----------------------------------------------------------


def test_a_500_is_retried_then_falls_back_and_says_so_everywhere(routed, events_for) -> None:
    r = routed(*fallback_pair(Up("primary", fail="500")))
    request_id, completion = r.chat()
    assert completion.choices[0].message.content
    assert completion.model == "mock-backup"  # the fallback's upstream model answered
    assert r.counts() == {"primary": 2, "backup": 1}  # retry.attempts = 2 in the group

    event = one_event(r, events_for, request_id)
    assert tries(event) == [
        ("chat", "primary", 500, "upstream_unavailable"),
        ("chat", "primary", 500, "upstream_unavailable"),
        ("backup", "backup", 200, ""),
    ]
    assert [a["provider"] for a in event["attempts"]] == ["primary", "primary", "backup"]
    assert event["deployment"] == "backup" and event["provider"] == "openai"
    assert event["model_requested"] == MODEL and event["status_code"] == 200

    text = r.metrics()
    upstream = "meterline_gateway_upstream_requests_total"
    assert metric(text, upstream, provider="primary", deployment="primary", outcome="500") == 2
    assert metric(text, upstream, provider="backup", deployment="backup", outcome="200") == 1
    assert metric(text, "meterline_gateway_retries_total", deployment="primary") == 1
    assert metric(text, "meterline_gateway_fallbacks_total", **{"from": "chat", "to": "backup"})
    assert metric(text, "meterline_gateway_fallbacks_total", to="backup") == 1
    for name in ("primary", "backup"):  # closed: the breaker needs 1000 failures here
        assert metric(text, "meterline_gateway_breaker_state", deployment=name, provider=name) == 0


def test_a_short_retry_after_is_waited_for_on_the_same_deployment(routed, events_for) -> None:
    r = routed(*fallback_pair(Up("primary", fail="429:0.3x1")))
    started = time.monotonic()
    request_id, completion = r.chat()
    assert completion.model == "mock-gpt"
    assert time.monotonic() - started >= 0.3  # it honoured the upstream's Retry-After
    assert r.counts() == {"primary": 2, "backup": 0}
    event = one_event(r, events_for, request_id)
    assert tries(event) == [
        ("chat", "primary", 429, "rate_limited"),
        ("chat", "primary", 200, ""),
    ]
    assert event["deployment"] == "primary"


def test_a_long_retry_after_is_not_waited_for_the_fallback_serves(routed, events_for) -> None:
    r = routed(*fallback_pair(Up("primary", fail="429:30")), retry={"attempts": 3})
    started = time.monotonic()
    request_id, completion = r.chat()
    assert time.monotonic() - started < 5  # nowhere near the 30 s asked
    assert completion.model == "mock-backup"
    assert r.counts() == {"primary": 1, "backup": 0 + 1}
    event = one_event(r, events_for, request_id)
    assert [(a["deployment"], a["status"]) for a in event["attempts"]] == [
        ("primary", 429),
        ("backup", 200),
    ]


def test_a_long_retry_after_without_fallback_reaches_the_client_at_once(routed) -> None:
    """Anthropic SDK: the 429 comes back in Anthropic's shape with the upstream's
    Retry-After, after one upstream request."""
    r = routed(G("chat", (Up("only", fail="429:30", kind="anthropic"),)), retry={"attempts": 3})
    started = time.monotonic()
    with pytest.raises(anthropic.RateLimitError) as caught:
        r.anthropic().messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    assert time.monotonic() - started < 5
    assert caught.value.response.headers["retry-after"] == "30"
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert r.counts() == {"only": 1}


def test_a_first_byte_timeout_falls_back(routed, events_for) -> None:
    r = routed(*fallback_pair(Up("primary", fail="timeout", first_byte_s=0.5)))
    started = time.monotonic()
    request_id, completion = r.chat()
    assert time.monotonic() - started < 8  # two 0.5 s timeouts, then the fallback
    assert completion.model == "mock-backup"
    assert r.counts() == {"primary": 2, "backup": 1}
    event = one_event(r, events_for, request_id)
    assert tries(event) == [
        ("chat", "primary", 0, "timeout"),
        ("chat", "primary", 0, "timeout"),
        ("backup", "backup", 200, ""),
    ]


def test_a_disconnect_before_the_first_byte_falls_back(routed, events_for) -> None:
    r = routed(*fallback_pair(Up("primary", fail="disconnect")), retry={"attempts": 1})
    request_id, completion = r.chat()
    assert completion.model == "mock-backup"
    assert r.counts() == {"primary": 1, "backup": 1}
    event = one_event(r, events_for, request_id)
    assert tries(event) == [("chat", "primary", 0, "connection"), ("backup", "backup", 200, "")]


def test_a_context_window_error_falls_back_without_retrying(routed, events_for) -> None:
    r = routed(*fallback_pair(Up("primary", fail="context")), retry={"attempts": 3})
    request_id, completion = r.chat()
    assert completion.model == "mock-backup"
    assert r.counts() == {"primary": 1, "backup": 1}  # never the same deployment again
    event = one_event(r, events_for, request_id)
    assert tries(event) == [
        ("chat", "primary", 400, "context_window"),
        ("backup", "backup", 200, ""),
    ]


def test_messages_fall_back_from_a_failing_anthropic_upstream_to_a_gpt_one(
    routed, events_for
) -> None:
    """Anthropic SDK, Messages API: the Anthropic-kind primary fails with 529, the OpenAI
    fallback serves the request translated."""
    r = routed(
        G("chat", (Up("claude", fail="529", kind="anthropic"),), fallbacks=("backup",)),
        G("backup", (Up("gpt", model="mock-backup"),)),
        retry={"attempts": 1},
    )
    raw = r.anthropic().messages.with_raw_response.create(
        model=MODEL, max_tokens=20, messages=MESSAGES
    )
    message = raw.parse()
    assert message.content[0].text and message.stop_reason in ("end_turn", "max_tokens")
    assert r.counts() == {"claude": 1, "gpt": 1}
    event = one_event(r, events_for, raw.headers["x-request-id"])
    assert [(a["deployment"], a["status"]) for a in event["attempts"]] == [
        ("claude", 529),
        ("gpt", 200),
    ]
    assert event["deployment"] == "gpt"


# --- streams --------------------------------------------------------------------------


def test_a_stream_falls_back_when_the_primary_fails_before_its_first_event(
    routed, events_for
) -> None:
    r = routed(*fallback_pair(Up("primary", fail="timeout", first_byte_s=0.5)))
    raw = r.openai().chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=20, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    assert text
    assert r.counts() == {"primary": 2, "backup": 1}
    event = one_event(r, events_for, raw.headers["x-request-id"])
    assert tries(event) == [
        ("chat", "primary", 0, "timeout"),
        ("chat", "primary", 0, "timeout"),
        ("backup", "backup", 200, ""),
    ]
    assert event["stream"] is True and event["status_code"] == 200


def test_a_messages_stream_falls_back_after_a_disconnect_before_its_first_event(
    routed, events_for
) -> None:
    r = routed(
        *fallback_pair(Up("primary", fail="disconnect", kind="anthropic"), backup_kind="anthropic")
    )
    with r.anthropic().messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        request_id = stream.response.headers["x-request-id"]
    assert text
    assert r.counts() == {"primary": 2, "backup": 1}
    event = one_event(r, events_for, request_id)
    assert [a["error"] for a in event["attempts"]] == ["connection", "connection", ""]
    assert event["deployment"] == "backup"


def test_no_fallback_once_a_chat_stream_has_begun(routed, events_for) -> None:
    r = routed(*fallback_pair(Up("primary", fail="disconnect-mid-stream")))
    raw = r.openai().chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=20, stream=True
    )
    assert raw.http_response.status_code == 200  # the stream began
    chunks = 0
    with pytest.raises(openai.APIError, match="incomplete"):  # the in-band error event
        for _ in raw.parse():
            chunks += 1
    assert chunks  # events reached the client before the upstream dropped
    assert r.counts() == {"primary": 1, "backup": 0}  # neither retried nor fallen back
    event = one_event(r, events_for, raw.headers["x-request-id"])
    assert event["status_code"] >= 500 and event["error_type"] == "upstream_unavailable"
    assert event["attempts"] == [] and event["deployment"] == "primary"  # one try, committed


def test_no_fallback_once_a_messages_stream_has_begun(routed, events_for) -> None:
    r = routed(
        *fallback_pair(
            Up("primary", fail="disconnect-mid-stream", kind="anthropic"), backup_kind="anthropic"
        )
    )
    with (
        pytest.raises(anthropic.APIError),
        r.anthropic().messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream,
    ):
        request_id = stream.response.headers["x-request-id"]
        for _ in stream:
            pass
    assert r.counts() == {"primary": 1, "backup": 0}
    event = one_event(r, events_for, request_id)
    assert event["status_code"] >= 500 and event["error_type"] == "upstream_unavailable"
    assert event["attempts"] == [] and event["deployment"] == "primary"


# --- retries within a group -----------------------------------------------------------


def test_weighted_retries_move_from_a_failing_deployment_to_a_healthy_one(
    routed, events_for
) -> None:
    # The failing deployment weighs 50 times more: it is nearly always tried first.
    r = routed(G("chat", (Up("bad", fail="503", weight=50), Up("good"))))
    request_ids = [r.chat()[0] for _ in range(6)]
    events = events_for(r.settings, request_ids)
    assert all(e["deployment"] == "good" and e["status_code"] == 200 for e in events)
    tried_bad = [e for e in events if len(e["attempts"]) == 2]
    for event in tried_bad:
        assert tries(event) == [
            ("chat", "bad", 503, "upstream_unavailable"),
            ("chat", "good", 200, ""),
        ]
    assert all(single_try(e, "good", 200) for e in events if e not in tried_bad)
    assert tried_bad  # 6 requests at 50:1 odds
    assert r.counts() == {"bad": len(tried_bad), "good": 6}
    assert metric(r.metrics(), "meterline_gateway_retries_total", deployment="bad") == len(
        tried_bad
    )


def test_transient_failures_are_recovered_by_retries(routed, events_for) -> None:
    r = routed(G("chat", (Up("flaky", fail="500x2"),)), retry={"attempts": 3})
    request_id, completion = r.chat()
    assert completion.choices[0].message.content
    assert r.counts() == {"flaky": 3}
    event = one_event(r, events_for, request_id)
    assert [a["status"] for a in event["attempts"]] == [500, 500, 200]
    assert metric(r.metrics(), "meterline_gateway_retries_total", deployment="flaky") == 2


def test_retries_never_exceed_the_attempts(routed, events_for) -> None:
    r = routed(G("chat", (Up("down", fail="503"),)), retry={"attempts": 3})
    with pytest.raises(openai.APIStatusError) as caught:
        r.chat()
    assert caught.value.status_code >= 500
    assert r.counts() == {"down": 3}
    event = one_event(r, events_for, caught.value.response.headers["x-request-id"])
    assert [a["status"] for a in event["attempts"]] == [503, 503, 503]
    assert event["status_code"] == caught.value.status_code


def test_retries_never_exceed_the_total_time(routed, events_for) -> None:
    # Every try waits a 0.4 s Retry-After: 1.0 s of total time leaves room for 3 tries
    # at most, though 10 attempts are allowed.
    r = routed(
        G("chat", (Up("slow", fail="429:0.4"),)),
        retry={"attempts": 10, "total_s": 1.0, "max_retry_after_s": 2.0},
    )
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        r.chat()
    assert time.monotonic() - started < 5
    received = r.received("slow")
    assert 1 <= received <= 3
    event = one_event(r, events_for, caught.value.response.headers["x-request-id"])
    assert len(event["attempts"]) == received


def test_timeouts_count_against_the_total_time(routed, events_for) -> None:
    r = routed(
        G("chat", (Up("hung", fail="timeout", first_byte_s=0.5),)),
        retry={"attempts": 10, "total_s": 1.2},
    )
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        r.chat()
    assert time.monotonic() - started < 6
    assert caught.value.status_code == 504
    received = r.received("hung")
    assert 1 <= received <= 3  # each try takes 0.5 s (the last what is left)
    event = one_event(r, events_for, caught.value.response.headers["x-request-id"])
    assert len(event["attempts"]) == received
    assert {a["error"] for a in event["attempts"]} == {"timeout"}


def test_client_errors_are_never_retried_nor_fallen_back_from(routed, events_for) -> None:
    r = routed(*fallback_pair(Up("primary", fail="400")), retry={"attempts": 3})
    with pytest.raises(openai.BadRequestError) as caught:
        r.chat()
    assert r.counts() == {"primary": 1, "backup": 0}
    event = one_event(r, events_for, caught.value.response.headers["x-request-id"])
    assert single_try(event, "primary", 400)
    assert r.breakers()["primary"] == "closed"  # a client error says nothing of its health


# --- the circuit breaker --------------------------------------------------------------


def test_a_breaker_opens_skips_the_upstream_then_half_opens_and_closes(routed, events_for) -> None:
    # The primary fails its first 2 requests, then would answer: only a probe finds out.
    r = routed(
        *fallback_pair(Up("primary", fail="500x2")),
        retry={"attempts": 1},
        breaker={"failures": 2, "cooldown_s": 1.0},
    )
    for _ in range(2):
        assert r.chat()[1].model == "mock-backup"
    assert r.breakers()["primary"] == "open"
    opened_at = time.monotonic()
    text = r.metrics()
    assert (
        metric(text, "meterline_gateway_breaker_state", deployment="primary", provider="primary")
        == 2
    )

    # Open: requests go straight to the fallback, costing the primary nothing.
    skipped = [r.chat()[0] for _ in range(3)]
    assert r.counts() == {"primary": 2, "backup": 5}
    for event in events_for(r.settings, skipped):
        assert single_try(event, "backup", 200)

    # After the cooldown one probe goes through; it succeeds and closes the breaker.
    time.sleep(max(0.0, opened_at + 1.2 - time.monotonic()))
    request_id, completion = r.chat()
    assert completion.model == "mock-gpt"
    assert r.counts() == {"primary": 3, "backup": 5}
    assert single_try(one_event(r, events_for, request_id), "primary", 200)
    assert r.breakers()["primary"] == "closed"
    assert metric(r.metrics(), "meterline_gateway_breaker_state", deployment="primary") == 0


def test_a_dead_upstream_costs_one_probe_per_cooldown(routed) -> None:
    r = routed(
        *fallback_pair(Up("primary", fail="500")),
        retry={"attempts": 1},
        breaker={"failures": 1, "cooldown_s": 1.0},
    )
    r.chat()
    assert r.breakers()["primary"] == "open"
    opened_at = time.monotonic()
    for _ in range(3):
        r.chat()
    assert r.counts() == {"primary": 1, "backup": 4}
    time.sleep(max(0.0, opened_at + 1.2 - time.monotonic()))
    for _ in range(3):  # the first is the probe; it fails and opens the breaker again
        assert r.chat()[1].model == "mock-backup"
    assert r.counts() == {"primary": 2, "backup": 7}
    assert r.breakers()["primary"] == "open"


# --- one event per request ------------------------------------------------------------


def test_every_routed_request_emits_exactly_one_event(routed, read_events) -> None:
    r = routed(
        G("chat", (Up("flaky", fail="500x2"), Up("ok", weight=0.5)), fallbacks=("backup",)),
        G("backup", (Up("backup", model="mock-backup"),)),
        retry={"attempts": 2},
    )
    request_ids = [r.chat()[0] for _ in range(4)]
    with r.openai().chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=10, stream=True
    ) as stream:
        for _ in stream:
            pass
    events = read_events(r.settings, lambda evs: len(evs) >= 5)
    time.sleep(0.5)  # anything extra would have arrived by now
    events = read_events(r.settings, lambda evs: len(evs) >= 5)
    assert len(events) == 5
    assert len({e["request_id"] for e in events}) == 5
    assert set(request_ids) < {e["request_id"] for e in events}
    total = 0
    for event in events:
        RequestEvent.model_validate(event)
        if not event["attempts"]:  # served by its first try
            total += 1
            continue
        last = event["attempts"][-1]
        assert (last["deployment"], last["status"]) == (event["deployment"], 200)
        assert all(
            set(a) >= {"group", "deployment", "provider", "status", "error"}
            for a in event["attempts"]
        )
        total += len(event["attempts"])
    assert total == sum(r.counts().values())  # every upstream request is an attempt
