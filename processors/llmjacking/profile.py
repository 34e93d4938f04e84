"""A key's learned behaviour and its current window of event time. Pure.

`KeyWindow` collects one window of a key's requests; when the window closes without a
detection it is merged into the `KeyProfile` (networks, user agents, models, hours,
window sizes). A window that raised an anomaly is never learned, so an attacker's
networks and models stay "new" instead of becoming the key's normal.

Request and token volume are learned per active minute (EWMA with variance): a key
idle for a day has no meaningful zero-rate baseline, but its rate while active does.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = ["Ewma", "KeyProfile", "KeyWindow"]

_MAX_NETWORKS = 256
_MAX_USER_AGENTS = 64
_MAX_MODELS = 64
_MAX_SAMPLES = 10
_MAX_SEEN_IDS = 20_000  # request ids remembered per window, to drop redeliveries


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

    def z(self, value: float, floor: float) -> float:
        # The floors keep a very regular key (variance ~0) from alarming on a little more
        # than usual: far above baseline means several times the mean, too.
        return (value - self.mean) / max(math.sqrt(self.var), floor, 0.5 * self.mean)


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
    expensive: int = 0
    off_hours: int = 0
    peak_minute_requests: int = 0
    peak_minute_tokens: int = 0
    peak_volume_z: float = 0.0
    peak_tokens_z: float = 0.0
    networks: Counter[str] = field(default_factory=Counter)
    new_networks: dict[str, datetime] = field(default_factory=dict)  # -> first seen
    user_agents: Counter[str] = field(default_factory=Counter)
    new_user_agents: dict[str, datetime] = field(default_factory=dict)
    models: Counter[str] = field(default_factory=Counter)
    new_models: dict[str, datetime] = field(default_factory=dict)
    error_types: Counter[str] = field(default_factory=Counter)
    hours: Counter[int] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    evidence_ids: dict[str, list[str]] = field(default_factory=dict)  # signal -> request ids
    seen: set[str] = field(default_factory=set)
    alerted_rank: int = 0  # severity rank already reported for this window
    reported: set[str] = field(default_factory=set)  # signal names already reported
    signal_names: frozenset[tuple[str, int]] = frozenset()  # (name, strength), last seen

    def sample(self, request_id: str, *signals: str) -> None:
        if len(self.samples) < _MAX_SAMPLES:
            self.samples.append(request_id)
        for signal in signals:
            ids = self.evidence_ids.setdefault(signal, [])
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
class KeyProfile:
    key_id: str
    org: str
    first_seen: datetime
    last_seen: datetime
    requests: int = 0  # learned (merged) requests
    windows: int = 0  # learned windows
    networks: dict[str, datetime] = field(default_factory=dict)  # -> last seen
    user_agents: dict[str, datetime] = field(default_factory=dict)
    models: Counter[str] = field(default_factory=Counter)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    max_window_networks: int = 0
    usual_price: float | None = None  # unit price of the priciest model the key uses
    rate: Ewma = field(default_factory=Ewma)  # requests per active minute
    tokens: Ewma = field(default_factory=Ewma)  # tokens per active minute
    minute: int | None = None  # epoch minute being counted
    minute_requests: int = 0
    minute_tokens: int = 0
    window: KeyWindow | None = None
    blocked_until: datetime | None = None  # our block (wall clock), if any
    blocked_rank: int = 0

    def age(self) -> timedelta:
        return self.last_seen - self.first_seen

    def hour_share(self, hour: int) -> float:
        """Share of learned requests in this UTC hour and its neighbours."""
        total = sum(self.hours)
        if total == 0:
            return 1.0
        near = sum(self.hours[(hour + delta) % 24] for delta in (-1, 0, 1))
        return near / total

    def learn(self, window: KeyWindow, price: Callable[[str], float | None]) -> None:
        """Merge a clean window; `price` gives the tier of a model."""
        self.requests += window.requests
        self.windows += 1
        for net in window.networks:
            self.networks[net] = window.end
        for agent in window.user_agents:
            self.user_agents[agent] = window.end
        self.models.update(window.models)
        for hour, count in window.hours.items():
            self.hours[hour] += count
        self.max_window_networks = max(self.max_window_networks, len(window.networks))
        _bound_by_recency(self.networks, _MAX_NETWORKS)
        _bound_by_recency(self.user_agents, _MAX_USER_AGENTS)
        if len(self.models) > _MAX_MODELS:
            self.models = Counter(dict(self.models.most_common(_MAX_MODELS)))
        self._update_usual_price(price)

    def _update_usual_price(self, price: Callable[[str], float | None]) -> None:
        # Models with a real share of the traffic; a one-off try does not set the tier.
        total = sum(self.models.values())
        usual = [
            tier
            for model, count in self.models.items()
            if count >= 0.02 * total and (tier := price(model)) is not None
        ]
        self.usual_price = max(usual) if usual else None


def _bound_by_recency(values: dict[str, datetime], limit: int) -> None:
    if len(values) > limit:
        for name, _ in sorted(values.items(), key=lambda item: item[1])[: len(values) - limit]:
            del values[name]
