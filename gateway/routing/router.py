"""The router: which deployment serves a request, and what happens when it fails.

For the requested model the router plans a chain of groups: the model's group, then its
fallback groups in order. Within a group it orders the deployments it may use now (the
breaker closed or ready for its probe, the deployment's RPM left) by the configured
strategy, and tries them:

- a failure on a `retry_on` trigger moves to the next deployment at once; with none left
  it retries the same ones after an exponential backoff with full jitter (the upstream's
  Retry-After when it sent one, unless longer than `max_retry_after_s`), up to
  `retry.attempts` tries in the group;
- a failure on a `fallback_on` trigger, or a group with no usable deployment, moves to
  the next group; any other failure (a client error) is the answer;
- the whole request never takes longer than `retry.total_s`.

Every try becomes an `Attempt` the RequestEvent carries. All state is this process's
memory (ARCHITECTURE §8): no network call besides the upstreams themselves.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from gateway.errors import UpstreamError, UpstreamUnavailable
from gateway.providers.base import Provider, Timeouts
from gateway.ratelimit import TokenBucket
from gateway.routing.breaker import CircuitBreaker
from gateway.routing.failures import is_upstream_fault, retry_after_s, trigger_of
from meterline.routing_config import DeploymentConfig, ModelGroupConfig, RoutingConfig

__all__ = ["Attempt", "Deployment", "Group", "Router", "Timeouts"]

T = TypeVar("T")

_MAX_IMPLICIT_GROUPS = 10_000  # clients choose model names: bound the memo
_LATENCY_ALPHA = 0.2  # EWMA weight of the newest latency sample


@dataclass(slots=True)
class Deployment:
    """One provider serving one upstream model, with its live routing state."""

    name: str
    provider_name: str
    group: str | None  # None: a pattern-routed provider's deployment, for any model
    model: str | None  # None: the model as the client asked (pattern-routed providers)
    weight: float
    timeouts: Timeouts
    breaker: CircuitBreaker
    requests: TokenBucket | None = None
    tokens: TokenBucket | None = None
    provider: Provider | None = None  # bound at start (the upstream session lives there)
    in_flight: int = 0
    latency_s: float | None = None  # EWMA of successful calls

    def upstream_model(self, requested: str) -> str:
        return self.model or requested

    def has_room(self, now: float, tokens: int) -> bool:
        """Whether this gateway's share of the deployment's RPM and TPM has room."""
        if self.requests is not None and self.requests.wait(1, now) > 0:
            return False
        return self.tokens is None or self.tokens.wait(tokens, now) == 0

    def take(self, tokens: int) -> None:
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(tokens)

    def observe_latency(self, seconds: float) -> None:
        if self.latency_s is None:
            self.latency_s = seconds
        else:
            self.latency_s += _LATENCY_ALPHA * (seconds - self.latency_s)


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    deployments: tuple[Deployment, ...]
    fallbacks: tuple[str, ...] = ()


@dataclass(slots=True)
class Attempt:
    """One try: which deployment, how it ended (`status` 0 for no HTTP answer), how long."""

    group: str
    deployment: str
    provider: str
    model: str
    status: int = 0
    latency_ms: float = 0.0
    error: str = ""

    def as_event(self) -> dict[str, object]:
        return {
            "group": self.group,
            "deployment": self.deployment,
            "provider": self.provider,
            "model": self.model,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


@dataclass(slots=True)
class _Outcome:
    """What the router learned from the failures of one request so far: the last failure
    in the current group, and the last in any group (what the client gets when every
    later group had no usable deployment)."""

    last: UpstreamError | None = None
    last_anywhere: UpstreamError | None = None


class Router:
    """**Parameters:** `config` (groups, strategy, retry, breaker), `provider_names` (every
    configured provider: deployments must name one), `patterns` (model -> provider name
    for names no group claims), `default_timeouts`, `clock` (monotonic seconds), `sleep`
    and `rng` (injected so tests control time and choice)."""

    def __init__(
        self,
        config: RoutingConfig,
        *,
        patterns: Callable[[str], str | None],
        default_timeouts: Timeouts,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._patterns = patterns
        self._defaults = default_timeouts
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._groups: dict[str, Group] = {}  # every name and alias -> its group
        self.deployments: list[Deployment] = []
        for group in config.groups:
            built = Group(
                group.name,
                tuple(self._deployment(group, d) for d in group.deployments),
                tuple(group.fallbacks),
            )
            self.deployments += built.deployments
            for name in (group.name, *group.aliases):
                self._groups[name] = built
        self._implicit_deployments: dict[str, Deployment] = {}  # provider -> deployment
        self._implicit_groups: dict[str, Group | None] = {}

    # --- configuration ---------------------------------------------------------------

    def _timeouts(self, deployment: DeploymentConfig) -> Timeouts:
        t = deployment.timeouts
        return Timeouts(
            connect_s=t.connect_s or self._defaults.connect_s,
            first_byte_s=t.first_byte_s or self._defaults.first_byte_s,
            total_s=t.total_s or self._defaults.total_s,
        )

    def _breaker(self) -> CircuitBreaker:
        return CircuitBreaker(self.config.breaker.failures, self.config.breaker.cooldown_s)

    def _deployment(self, group: ModelGroupConfig, config: DeploymentConfig) -> Deployment:
        model = config.model or group.name
        return Deployment(
            name=config.name or f"{config.provider}/{model}",
            provider_name=config.provider,
            group=group.name,
            model=model,
            weight=config.weight,
            timeouts=self._timeouts(config),
            breaker=self._breaker(),
            requests=TokenBucket(config.rpm, self._clock()) if config.rpm else None,
            tokens=TokenBucket(config.tpm, self._clock()) if config.tpm else None,
        )

    def implicit_deployment(self, provider_name: str) -> Deployment:
        """The deployment of a pattern-routed provider: the model as asked, one breaker
        for the provider."""
        found = self._implicit_deployments.get(provider_name)
        if found is None:
            found = self._implicit_deployments[provider_name] = Deployment(
                name=provider_name,
                provider_name=provider_name,
                group=None,
                model=None,
                weight=1.0,
                timeouts=self._defaults,
                breaker=self._breaker(),
            )
            self.deployments.append(found)
        return found

    def bind(self, providers: dict[str, Provider]) -> None:
        """Give every deployment its transport (at start, inside the event loop)."""
        self._providers = providers
        for deployment in self.deployments:
            deployment.provider = providers[deployment.provider_name]

    def state(self) -> list[dict[str, object]]:
        """Every deployment's live state (GET /admin/routing, metrics)."""
        now = self._clock()
        return [
            {
                "deployment": d.name,
                "provider": d.provider_name,
                "group": d.group,
                "model": d.model,
                "breaker": d.breaker.state_at(now),
                "consecutive_failures": d.breaker.failures,
                "in_flight": d.in_flight,
                "latency_ms": round(d.latency_s * 1000, 3) if d.latency_s is not None else None,
            }
            for d in self.deployments
        ]

    def now(self) -> float:
        return self._clock()

    def stream_failed(self, deployment: Deployment) -> None:
        """A stream this deployment began broke off later: that counts against its
        breaker too (the try itself succeeded at its first event)."""
        deployment.breaker.success_retracted(self._clock())

    # --- planning ------------------------------------------------------------------

    def group_for(self, model: str) -> Group | None:
        group = self._groups.get(model)
        if group is not None:
            return group
        try:
            return self._implicit_groups[model]
        except KeyError:
            pass
        provider_name = self._patterns(model)
        implicit = None
        if provider_name is not None:
            deployment = self.implicit_deployment(provider_name)
            if deployment.provider is None and hasattr(self, "_providers"):
                deployment.provider = self._providers[provider_name]
            implicit = Group(model, (deployment,))
        if len(self._implicit_groups) < _MAX_IMPLICIT_GROUPS:
            self._implicit_groups[model] = implicit
        return implicit

    def chain(self, model: str) -> list[Group]:
        """The model's group, then its fallbacks (each once, in order); empty if unknown."""
        first = self.group_for(model)
        if first is None:
            return []
        chain = [first]
        for name in first.fallbacks:
            group = self._groups.get(name)
            if group is not None and group not in chain:
                chain.append(group)
        return chain

    def public_names(self) -> list[str]:
        """The model names and aliases groups serve (GET /v1/models)."""
        return list(self._groups)

    def _order(
        self,
        group: Group,
        now: float,
        exclude: Iterable[Deployment],
        tokens: int,
        usable: Callable[[Deployment], bool],
    ) -> list[Deployment]:
        skip = {id(d) for d in exclude}
        ready = [
            d
            for d in group.deployments
            if id(d) not in skip
            and usable(d)
            and d.breaker.available(now)
            and d.has_room(now, tokens)
        ]
        if len(ready) < 2:
            return ready
        strategy = self.config.strategy
        if strategy == "least_busy":
            return sorted(ready, key=lambda d: (d.in_flight / d.weight, self._rng.random()))
        if strategy == "latency":  # untried deployments first: they need a sample
            return sorted(ready, key=lambda d: (d.latency_s or 0.0, self._rng.random()))
        # Weighted order without replacement (Efraimidis-Spirakis): key u^(1/w), highest first.
        return sorted(ready, key=lambda d: self._rng.random() ** (1.0 / d.weight), reverse=True)

    # --- running -------------------------------------------------------------------

    async def call(
        self,
        chain: list[Group],
        attempt: Callable[[Group, Deployment, float], Awaitable[T]],
        attempts: list[Attempt],
        requested_model: str,
        tokens: int = 0,
        usable: Callable[[Deployment], bool] = lambda _: True,
    ) -> tuple[T, Deployment]:
        """Run `attempt(group, deployment, seconds_left)` until one succeeds; append every
        try to `attempts`. `tokens` is the request's token estimate (deployment TPM);
        `usable` says which deployments can serve the request at all (its API).
        Raises the last UpstreamError when none does."""
        retry = self.config.retry
        deadline = self._clock() + retry.total_s
        outcome = _Outcome()
        for index, group in enumerate(chain):
            has_next = index + 1 < len(chain)
            result = await self._in_group(
                group, attempt, attempts, requested_model, tokens, usable, deadline, outcome
            )
            if result is not None:
                return result
            last = outcome.last
            if last is None:  # no deployment was usable: the group is down or saturated
                continue
            if not has_next or trigger_of(last) not in self.config.fallback_on:
                raise last
        if outcome.last_anywhere is not None:
            raise outcome.last_anywhere
        names = ", ".join(g.name for g in chain)
        raise UpstreamUnavailable(
            f"no deployment of {names} is available now (circuit open or at its rate limit)"
        )

    async def _in_group(
        self,
        group: Group,
        attempt: Callable[[Group, Deployment, float], Awaitable[T]],
        attempts: list[Attempt],
        requested_model: str,
        tokens: int,
        usable: Callable[[Deployment], bool],
        deadline: float,
        outcome: _Outcome,
    ) -> tuple[T, Deployment] | None:
        retry = self.config.retry
        tried_here: list[Deployment] = []
        outcome.last = None
        tries = 0
        while tries < retry.attempts:
            now = self._clock()
            candidates = self._order(group, now, tried_here, tokens, usable)
            if not candidates and tried_here:  # every one failed once: back off, go again
                wait = self._backoff(tries, outcome.last, deadline)
                if wait is None:
                    return None
                await self._sleep(wait)
                tried_here.clear()
                now = self._clock()
                candidates = self._order(group, now, (), tokens, usable)
            deployment = next((d for d in candidates if d.breaker.acquire(now)), None)
            if deployment is None:
                return None
            left = deadline - now
            if left <= 0:
                return None
            tries += 1
            deployment.take(tokens)
            record = Attempt(
                group=group.name,
                deployment=deployment.name,
                provider=deployment.provider_name,
                model=deployment.upstream_model(requested_model),
            )
            attempts.append(record)
            deployment.in_flight += 1
            started = self._clock()
            try:
                result = await attempt(group, deployment, left)
            except UpstreamError as exc:
                record.latency_ms = round((self._clock() - started) * 1000, 3)
                record.status = exc.upstream_status or 0
                trigger = trigger_of(exc)
                record.error = str(trigger) if not isinstance(trigger, int) else exc.error_type
                if is_upstream_fault(trigger):
                    deployment.breaker.failure(self._clock())
                else:
                    deployment.breaker.release()
                outcome.last = outcome.last_anywhere = exc
                tried_here.append(deployment)
                if trigger not in self.config.retry_on:
                    return None
                continue
            except BaseException:
                deployment.breaker.release()
                raise
            finally:
                deployment.in_flight -= 1
            elapsed = self._clock() - started
            record.latency_ms = round(elapsed * 1000, 3)
            record.status = 200
            deployment.breaker.success()
            deployment.observe_latency(elapsed)
            return result, deployment
        return None

    def _backoff(self, tries: int, last: UpstreamError | None, deadline: float) -> float | None:
        """Seconds to wait before retrying the group's deployments; None: give up here."""
        retry = self.config.retry
        asked = retry_after_s(last) if last is not None else None
        if asked is not None:
            if asked > retry.max_retry_after_s:
                return None
            wait = asked
        else:
            ceiling = min(retry.max_backoff_s, retry.backoff_s * (2 ** max(0, tries - 1)))
            wait = self._rng.uniform(0, ceiling)  # full jitter
        if self._clock() + wait >= deadline:
            return None
        return wait
