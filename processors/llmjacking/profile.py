"""What the detector remembers: learned baselines, and each key's live state. Pure.

A `Baseline` is learned normal behaviour: networks, user agents, models, active hours,
requests and spend per active minute. Every key has one, and so do its peers (its
team, its app, its org and the whole population), so a young key is judged against
the keys around it until it has a normal of its own.

Learning is continuous but delayed: a request judged normal waits `probation_s` of
event time in the key's `probation` queue, and is learned (by the key and its peers)
only if the key raised no suspicion meanwhile. Traffic under suspicion is never
learned, so an attacker's networks and models stay "new" however long they last.

`KeyWindow` collects the key's current window of event time (what is new in it, probes,
not-found models, pricier calls); `Recent` the last minute (rate and spend).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Baseline", "Ewma", "KeyState", "KeyWindow", "Learned", "Recent"]

_MAX_NETWORKS = 512
_MAX_USER_AGENTS = 128
_MAX_MODELS = 64
_MAX_SAMPLES = 10
_MAX_SEEN_IDS = 20_000  # request ids remembered per window, to drop redeliveries
_USUAL_SHARE = 0.02  # a model with less of the traffic does not set the usual price
RECENT_S = 60.0  # rate and spend are measured over the last minute
_MIN_SPAN_S = 10.0  # ... and never over less: two quick calls are not a rate


@dataclass
class Ewma:
    """Exponentially weighted mean and variance (West's incremental form)."""

    alpha: float = 0.1
    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def update(self, value: float) -> None:
        if self.n == 0:
            self.mean = value
        else:
            diff = value - self.mean
            step = self.alpha * diff
            self.mean += step
            self.var = (1 - self.alpha) * (self.var + diff * step)
        self.n += 1

    def high(self) -> float:
        """A generous usual value: mean plus two deviations."""
        return self.mean + 2 * math.sqrt(max(self.var, 0.0))


@dataclass(frozen=True, slots=True)
class Learned:
    """One normal request (or a closed minute's volume), waiting in probation."""

    at: datetime
    network: str | None
    user_agent: str | None
    model: str | None
    hour: int  # -1 for a minute
    requests: int = 0
    spend: float = 0.0

    @classmethod
    def minute(cls, at: datetime, requests: int, spend: float) -> Learned:
        return cls(at, None, None, None, -1, requests, spend)


@dataclass
class Baseline:
    requests: int = 0  # learned requests
    first: datetime | None = None  # first learned request
    last: datetime | None = None
    networks: dict[str, datetime] = field(default_factory=dict)  # -> last learned
    user_agents: dict[str, datetime] = field(default_factory=dict)
    models: Counter[str] = field(default_factory=Counter)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    rate: Ewma = field(default_factory=Ewma)  # requests per active minute (per key)
    spend: Ewma = field(default_factory=Ewma)  # USD per active minute (per key)
    usual_price: float | None = None  # reference price of the priciest usual model
    price_stale: bool = False  # models learned since `usual_price` was computed

    def learn(self, item: Learned) -> None:
        self.requests += 1
        self.first = self.first or item.at
        self.last = item.at
        if item.network:
            self.networks[item.network] = item.at
            _bound_by_recency(self.networks, _MAX_NETWORKS)
        if item.user_agent:
            self.user_agents[item.user_agent] = item.at
            _bound_by_recency(self.user_agents, _MAX_USER_AGENTS)
        if item.model:
            count = self.models[item.model] = self.models[item.model] + 1
            # Shares move slowly: refresh the usual price on a new model, else now and then.
            self.price_stale = self.price_stale or count == 1 or self.requests % 64 == 0
            if len(self.models) > 2 * _MAX_MODELS:
                self.models = Counter(dict(self.models.most_common(_MAX_MODELS)))
        self.hours[item.hour] += 1

    def learn_minute(self, requests: int, spend: float) -> None:
        self.rate.update(requests)
        self.spend.update(spend)

    def refresh_price(self, price_of: Callable[[str], float | None]) -> None:
        if not self.price_stale:
            return
        self.price_stale = False
        # Models with a real share of the traffic; a one-off try does not set the tier.
        total = sum(self.models.values())
        usual = [
            tier
            for model, count in self.models.items()
            if count >= _USUAL_SHARE * total and (tier := price_of(model)) is not None
        ]
        self.usual_price = max(usual) if usual else None

    def age_s(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return (self.last - self.first).total_seconds()

    def hour_share(self, hour: int) -> float:
        """Share of learned requests in this UTC hour and its neighbours."""
        total = sum(self.hours)
        if total == 0:
            return 1.0
        return sum(self.hours[(hour + delta) % 24] for delta in (-1, 0, 1)) / total


@dataclass
class Recent:
    """Requests and spend of the last `RECENT_S` seconds of event time."""

    calls: deque[tuple[float, float]] = field(default_factory=deque)  # (epoch s, USD)
    spend: float = 0.0

    def add(self, at: float, cost: float) -> None:
        self.calls.append((at, cost))
        self.spend += cost
        while self.calls and self.calls[0][0] <= at - RECENT_S:
            self.spend -= self.calls.popleft()[1]

    def per_minute(self) -> tuple[float, float]:
        """(requests per minute, USD per minute), over at least `_MIN_SPAN_S`."""
        if not self.calls:
            return 0.0, 0.0
        span = max(self.calls[-1][0] - self.calls[0][0], _MIN_SPAN_S)
        return len(self.calls) * 60.0 / span, max(self.spend, 0.0) * 60.0 / span


@dataclass
class KeyWindow:
    start: datetime
    end: datetime
    requests: int = 0
    tokens: int = 0
    errors: int = 0
    validation_errors: int = 0
    invalid_max_tokens: int = 0
    model_not_found: int = 0
    pricier: float = 0.0  # calls to models far pricier than usual, x confidence in "usual"
    pricier_ratio: float = 0.0  # the highest price ratio seen
    off_hours: int = 0
    network_novelty: float = 0.0  # sum over the window's new networks (features.novelty)
    foreign_networks: int = 0  # new networks that are new to the key's peers as well
    key_checks: int = 0  # near-empty calls from a new network: "does this key work?"
    home_network: str | None = None  # a brand-new key's first network: where it lives
    agent_novelty: float = 0.0
    model_novelty: float = 0.0  # models new to key and org, x how much they know
    networks: Counter[str] = field(default_factory=Counter)
    new_networks: dict[str, datetime] = field(default_factory=dict)  # -> first seen
    user_agents: Counter[str] = field(default_factory=Counter)
    new_user_agents: dict[str, datetime] = field(default_factory=dict)
    models: Counter[str] = field(default_factory=Counter)
    new_models: dict[str, datetime] = field(default_factory=dict)
    error_types: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    evidence_ids: dict[str, list[str]] = field(default_factory=dict)  # feature -> request ids
    seen: set[str] = field(default_factory=set)
    alerted_rank: int = 0  # severity rank already reported for this window
    reported: set[str] = field(default_factory=set)  # features already reported

    def sample(self, request_id: str, *features: str) -> None:
        if len(self.samples) < _MAX_SAMPLES:
            self.samples.append(request_id)
        for name in features:
            ids = self.evidence_ids.setdefault(name, [])
            if len(ids) < _MAX_SAMPLES:
                ids.append(request_id)

    def remember(self, request_id: str) -> bool:
        """False for a request id this window already counted (at-least-once delivery)."""
        if request_id in self.seen:
            return False
        if len(self.seen) < _MAX_SEEN_IDS:
            self.seen.add(request_id)
        return True


@dataclass
class KeyState:
    key_id: str
    org: str
    team: str
    app: str | None
    first_seen: datetime
    last_seen: datetime
    baseline: Baseline = field(default_factory=Baseline)
    window: KeyWindow | None = None
    recent: Recent = field(default_factory=Recent)
    probation: deque[Learned] = field(default_factory=deque)
    quiet_from: datetime | None = None  # nothing is learned before (last suspicion + probation)
    minute: int | None = None  # epoch minute being counted
    minute_requests: int = 0
    minute_spend: float = 0.0
    minute_clean: bool = True  # no suspicion during the minute: its volume may be learned
    blocked_until: datetime | None = None  # our block (wall clock), if any
    blocked_rank: int = 0

    def quiet_from_passed(self, at: datetime) -> bool:
        return self.quiet_from is None or at >= self.quiet_from


def _bound_by_recency(values: dict[str, datetime], limit: int) -> None:
    # Down to 3/4 of the limit at once, so the sort is paid once per limit/4 new values.
    if len(values) > limit:
        keep = limit * 3 // 4
        for name, _ in sorted(values.items(), key=lambda item: item[1])[: len(values) - keep]:
            del values[name]
