"""The router's decisions over a fake clock: balancing, retries within their bounds,
fallbacks on their triggers only, breakers that open, half-open and close."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gateway.errors import UpstreamStatusError, UpstreamTimeout, UpstreamUnavailable
from gateway.routing import Attempt, CircuitBreaker, Deployment, Group, Router, Timeouts
from meterline.routing_config import RoutingConfig

DEFAULTS = Timeouts(connect_s=1, first_byte_s=5, total_s=10)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def router(groups: list[dict], clock: Clock, **routing: object) -> Router:
    config = RoutingConfig.model_validate({"groups": groups, **routing})
    return Router(
        config,
        patterns=lambda model: "openai" if model.startswith("gpt-") else None,
        default_timeouts=DEFAULTS,
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(7),
    )


def group(name: str, *providers: str, fallbacks: tuple[str, ...] = (), **extra: object) -> dict:
    deployments = [{"provider": p, "model": f"{name}-{p}", **extra} for p in providers]
    return {"name": name, "deployments": deployments, "fallbacks": list(fallbacks)}


class Script:
    """Answers per deployment name, in order; the last answer repeats."""

    def __init__(self, **answers: list[object]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, group: Group, deployment: Deployment, left: float) -> str:
        self.calls.append(deployment.name)
        queue = self.answers[deployment.provider_name]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return f"{answer} from {deployment.name}"


def status(code: int, retry_after: str | None = None, body: bytes = b"{}") -> Exception:
    if code >= 500:
        return UpstreamUnavailable(
            f"returned {code}", upstream_status=code, retry_after=retry_after
        )
    return UpstreamStatusError(code, body, retry_after=retry_after)


async def run(r: Router, model: str, script: Script) -> tuple[str, list[Attempt]]:
    attempts: list[Attempt] = []
    result, _ = await r.call(r.chain(model), script, attempts, model)
    return result, attempts


async def test_weighted_balancing_follows_the_weights() -> None:
    clock = Clock()
    r = router(
        [
            {
                "name": "gpt-4o",
                "deployments": [
                    {"provider": "a", "weight": 3},
                    {"provider": "b", "weight": 1},
                ],
            }
        ],
        clock,
    )
    script = Script(a=["ok"], b=["ok"])
    for _ in range(2000):
        await run(r, "gpt-4o", script)
    share = Counter(script.calls)["a/gpt-4o"] / 2000
    assert 0.70 < share < 0.80


async def test_least_busy_prefers_the_idle_deployment() -> None:
    clock = Clock()
    r = router([group("m", "a", "b")], clock, strategy="least_busy")
    r.chain("m")[0].deployments[0].in_flight = 5
    script = Script(a=["ok"], b=["ok"])
    for _ in range(20):
        await run(r, "m", script)
    assert set(script.calls) == {"b/m-b"}


async def test_a_failure_moves_to_the_next_deployment_at_once() -> None:
    clock = Clock()
    r = router([group("m", "a", "b")], clock, strategy="least_busy")
    r.chain("m")[0].deployments[1].in_flight = 1  # a goes first
    script = Script(a=[status(500)], b=["ok"])
    result, attempts = await run(r, "m", script)
    assert result == "ok from b/m-b"
    assert [(a.deployment, a.status, a.error) for a in attempts] == [
        ("a/m-a", 500, "upstream_unavailable"),
        ("b/m-b", 200, ""),
    ]
    assert clock.slept == []


async def test_retries_back_off_within_their_bounds_and_honour_retry_after() -> None:
    clock = Clock()
    r = router([group("m", "a")], clock, retry={"attempts": 3, "backoff_s": 0.5})
    script = Script(a=[status(429, retry_after="2"), status(503), "ok"])
    result, attempts = await run(r, "m", script)
    assert result == "ok from a/m-a"
    assert [a.status for a in attempts] == [429, 503, 200]
    assert clock.slept[0] == 2.0  # the upstream's Retry-After
    assert 0 <= clock.slept[1] <= 1.0  # full jitter under backoff_s * 2


async def test_retries_never_exceed_the_attempts() -> None:
    clock = Clock()
    r = router([group("m", "a", "b")], clock, retry={"attempts": 3})
    script = Script(a=[status(500)], b=[status(502)])
    with pytest.raises(UpstreamUnavailable):
        await run(r, "m", script)
    assert len(script.calls) == 3


async def test_a_long_retry_after_is_not_waited_for() -> None:
    clock = Clock()
    r = router([group("m", "a", fallbacks=("n",)), group("n", "b")], clock)
    script = Script(a=[status(429, retry_after="3600")], b=["ok"])
    result, attempts = await run(r, "m", script)
    assert result == "ok from b/n-b"
    assert clock.slept == [] and [a.group for a in attempts] == ["m", "n"]


async def test_the_total_time_bounds_every_retry() -> None:
    clock = Clock()
    r = router([group("m", "a")], clock, retry={"attempts": 10, "total_s": 1, "backoff_s": 2})

    async def slow_failure(group: Group, deployment: Deployment, left: float) -> str:
        assert left <= 1
        clock.now += 0.6
        raise UpstreamTimeout("timed out")

    with pytest.raises(UpstreamTimeout):
        await r.call(r.chain("m"), slow_failure, [], "m")
    assert clock.now - 100.0 < 2.0


async def test_client_errors_are_neither_retried_nor_fallen_back_from() -> None:
    clock = Clock()
    r = router([group("m", "a", "b", fallbacks=("n",)), group("n", "c")], clock)
    script = Script(a=[status(400)], b=[status(400)], c=["ok"])
    with pytest.raises(UpstreamStatusError):
        await run(r, "m", script)
    assert len(script.calls) == 1


async def test_anthropic_overloaded_529_is_retried_then_fallen_back_from() -> None:
    """529 (Anthropic's overloaded_error) is a 5xx like 503: retried, then a fallback."""
    clock = Clock()
    r = router([group("m", "a", fallbacks=("n",)), group("n", "b")], clock)
    script = Script(a=[status(529)], b=["ok"])
    result, attempts = await run(r, "m", script)
    assert result == "ok from b/n-b"
    assert [(a.group, a.status) for a in attempts] == [
        ("m", 529),
        ("m", 529),
        ("m", 529),
        ("n", 200),
    ]


async def test_context_window_errors_fall_back_without_retrying() -> None:
    clock = Clock()
    r = router([group("m", "a", fallbacks=("big",)), group("big", "b")], clock)
    too_long = status(400, body=b'{"error":{"code":"context_length_exceeded","message":"x"}}')
    script = Script(a=[too_long], b=["ok"])
    result, attempts = await run(r, "m", script)
    assert result == "ok from b/big-b"
    assert [(a.group, a.error) for a in attempts] == [("m", "context_window"), ("big", "")]


async def test_fallback_chain_is_followed_in_order() -> None:
    clock = Clock()
    r = router(
        [
            group("m", "a", fallbacks=("n", "o")),
            group("n", "b"),
            group("o", "c"),
        ],
        clock,
        retry={"attempts": 1},
    )
    script = Script(a=[status(500)], b=[UpstreamUnavailable("refused")], c=["ok"])
    result, attempts = await run(r, "m", script)
    assert result == "ok from c/o-c"
    assert [a.group for a in attempts] == ["m", "n", "o"]


async def test_a_breaker_opens_then_half_opens_for_one_probe() -> None:
    clock = Clock()
    r = router(
        [group("m", "a")], clock, retry={"attempts": 1}, breaker={"failures": 3, "cooldown_s": 30}
    )
    script = Script(a=[status(500)])
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            await run(r, "m", script)
    assert r.chain("m")[0].deployments[0].breaker.state == "open"
    for _ in range(5):  # open: fails fast, the upstream sees nothing
        with pytest.raises(UpstreamUnavailable, match="no deployment"):
            await run(r, "m", script)
    assert len(script.calls) == 3
    clock.now += 31
    script.answers["a"] = ["ok"]
    result, _ = await run(r, "m", script)  # the probe
    assert result == "ok from a/m-a" and len(script.calls) == 4
    assert r.chain("m")[0].deployments[0].breaker.state == "closed"


def test_half_open_lets_exactly_one_probe_through() -> None:
    breaker = CircuitBreaker(failures=1, cooldown_s=10)
    breaker.failure(0.0)
    assert not breaker.acquire(5.0)
    assert breaker.acquire(10.0) and breaker.state == "half_open"
    assert not breaker.acquire(10.1)  # the probe is out
    breaker.failure(11.0)
    assert breaker.state == "open" and not breaker.acquire(20.0)
    assert breaker.acquire(21.0)
    breaker.success()
    assert breaker.state == "closed" and breaker.acquire(21.0) and breaker.acquire(21.0)


async def test_deployment_rpm_moves_traffic_to_the_other_deployment() -> None:
    clock = Clock()
    groups = [
        {
            "name": "m",
            "deployments": [
                {"provider": "a", "rpm": 2, "weight": 100},
                {"provider": "b", "weight": 1},
            ],
        }
    ]
    r = router(groups, clock)
    script = Script(a=["ok"], b=["ok"])
    for _ in range(5):
        await run(r, "m", script)
    assert Counter(script.calls) == {"a/m": 2, "b/m": 3}


async def test_unclaimed_models_route_by_provider_patterns() -> None:
    clock = Clock()
    r = router([], clock)
    assert r.chain("claude-x") == []
    chain = r.chain("gpt-4o-mini")
    assert [d.name for d in chain[0].deployments] == ["openai"]
    assert chain[0].deployments[0].upstream_model("gpt-4o-mini") == "gpt-4o-mini"
    assert r.chain("gpt-4o")[0].deployments[0] is chain[0].deployments[0]  # one breaker


def test_config_refuses_unknown_fallbacks_and_names_claimed_twice() -> None:
    with pytest.raises(ValueError, match="no group serves"):
        RoutingConfig.model_validate({"groups": [group("m", "a", fallbacks=("zz",))]})
    with pytest.raises(ValueError, match="claimed by two groups"):
        RoutingConfig.model_validate(
            {"groups": [group("m", "a"), {**group("n", "b"), "aliases": ["m"]}]}
        )


async def test_the_primarys_error_stands_when_every_fallback_is_unusable() -> None:
    clock = Clock()
    r = router(
        [group("m", "a", fallbacks=("n",)), group("n", "b")],
        clock,
        retry={"attempts": 1},
        breaker={"failures": 1, "cooldown_s": 60},
    )
    with pytest.raises(UpstreamUnavailable):  # opens n's breaker
        await run(r, "n", Script(b=[status(500)]))
    script = Script(a=[status(429, retry_after="30")], b=["ok"])
    with pytest.raises(UpstreamStatusError) as raised:
        await run(r, "m", script)
    assert raised.value.status == 429 and raised.value.retry_after == "30"
    assert script.calls == ["a/m-a"]


def test_an_open_breaker_past_its_cooldown_shows_half_open() -> None:
    breaker = CircuitBreaker(failures=1, cooldown_s=10)
    breaker.failure(0.0)
    assert breaker.state_at(5.0) == "open" and breaker.state_at(10.0) == "half_open"
    assert breaker.state == "open"  # only a request moves it


async def test_a_stream_that_breaks_off_counts_against_its_breaker() -> None:
    clock = Clock()
    r = router([group("m", "a")], clock, breaker={"failures": 2, "cooldown_s": 60})
    for _ in range(2):
        _, deployment = await r.call(r.chain("m"), Script(a=["first event"]), [], "m")
        r.stream_failed(deployment)  # ...then the upstream dropped the stream
    assert deployment.breaker.state == "open"
