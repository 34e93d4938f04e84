"""The features of a key's current window, each as log-odds points with its evidence. Pure.

Every feature compares what the key does now with a normal: the key's own baseline once
it is mature (`maturity` 1), its peers' (team, app, org, population) while it is young,
blended in between. So a key minutes old is still judged: a network none of its org's
keys ever used, ten times the rate its team's keys run at, a model five times pricier
than its org's usual one all count.

Point scales (fusion.py caps and adds them up):
- new networks / user agents: 1.6 / 1.5 x log2(1 + novelty), novelty summed over the window's
  new values: 1 for one unknown to the key and its org, 0.4 known to its peers.
- off hours: 0.8 once 3 calls fall in hours the key is never active.
- pricier models: log2(price ratio) - 1 (from 2x its usual priciest model), full weight
  from the second such call, at most 3.
- request rate and spend rate (USD per minute, projected): 1.2 and 1.3 x log2 of the
  ratio to 3x the normal (floored), so an expensive abuse scores faster than a cheap one.
- validation probes: 2.5 per call with `max_tokens <= 0`; 2 for a burst of validation
  errors that are most of the window (+0.25 each beyond 3).
- model enumeration: 1.5 per not-found model, 0.6 per model new to key and org beyond 2
  (weighted by how much key and org have learned: in a new org every model is new).
- key checks: 1.5 per served call with a token-sized prompt and `max_tokens` (at most 8)
  from a network new to the key, at most 3: how checkers test a stolen key. Less than an
  invalid probe: a developer may ping a key from a laptop; with a new client as well, it
  is the checker's signature.
- network rotation: 0.5 per foreign network (new to the key and its peers) beyond 2 in
  the window, at most 3, scaled down for a key that already lives in many networks: a
  move or a new region is one or two networks, a proxy pool is dozens.
- pricier calls and new models count as far as there is a usual to compare with: fully
  with a mature peer or a mature key, else by the key's maturity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from meterline.settings import LlmjackingSettings
from processors.llmjacking.fusion import IDENTITY, ROTATION, TRADECRAFT, USAGE, Contribution
from processors.llmjacking.profile import Baseline, KeyState, KeyWindow
from schemas.events.v1 import format_ts

__all__ = ["features", "maturity", "novelty", "reference"]

_NOVEL_TO_KEY_ONLY = 0.4  # a value the key's peers use: the team's office, their client
_OFF_HOURS_SHARE = 0.01
_OFF_HOURS_MIN_HISTORY = 200
_OFF_HOURS_MIN_CALLS = 3
_MIN_RATE_CALLS = 5  # in the last minute, before a rate means anything
_MIN_SPEND_CALLS = 3
_RATE_FLOOR = 6.0  # requests per minute: "far above" is at least 3x this
_SPEND_FLOOR = 0.01  # USD per minute (0.60 per hour)
_USUAL_FACTOR = 3.0
_ROTATION_FREE = 2  # foreign networks a window may add before rotation counts
_CONCENTRATED = 3  # networks a key may know and still count as living in a few


def maturity(baseline: Baseline, config: LlmjackingSettings) -> float:
    """0 for nothing learned, 1 once `learning_requests` over `learning_s` are learned."""
    by_count = baseline.requests / max(config.learning_requests, 1)
    by_age = baseline.age_s() / max(config.learning_s, 1e-9)
    return min(1.0, by_count, by_age)


def novelty(
    value: str,
    key: Mapping[str, object],
    peers: Sequence[Mapping[str, object]],
    key_m: float,
    org_m: float,
) -> float:
    """How new `value` (a network, a user agent) is for a key that has learned `key`, its
    peers `peers` (team, app, org): 0 if the key knows it; for a young key, new only as
    far as its org has a normal to be new against."""
    if value in key:
        return 0.0
    peers_know = any(value in known for known in peers)
    to_key = _NOVEL_TO_KEY_ONLY if peers_know else 1.0
    to_peers = 0.0 if peers_know else org_m
    return key_m * to_key + (1.0 - key_m) * to_peers


def reference(key_value: float, key_n: int, peer_value: float | None, key_m: float) -> float:
    """The normal to compare a rate with: the key's own when mature, else the larger of
    its own and its peers' (a young key is not odd for doing what its peers do)."""
    own = key_value if key_n >= 3 else 0.0
    if key_m >= 1.0 or peer_value is None:
        return own
    return max(own, peer_value)


def features(
    key: KeyState,
    window: KeyWindow,
    peers: Sequence[Baseline],
    key_m: float,
    explain: bool = False,
) -> list[Contribution]:
    """Contributions of the window so far; `peers` from the most specific (team) to the
    population, each mature enough to stand for the key. With neither a mature peer nor
    a history of its own, a key has no normal to exceed: usage features wait. Evidence is
    built only when `explain` (for an anomaly): scoring runs on every request."""
    out: list[Contribution] = []
    if window.network_novelty > 0:
        out.append(
            Contribution(
                "new_networks",
                IDENTITY,
                1.6 * math.log2(1 + window.network_novelty),
                {
                    "new_networks": _first(window.new_networks) if explain else {},
                    "known_networks": len(key.baseline.networks),
                    "networks_in_window": len(window.networks),
                },
            )
        )
    rotation = _rotation(key, window)
    if rotation > 0:
        out.append(
            Contribution(
                "network_rotation",
                ROTATION,
                rotation,
                {
                    "foreign_networks": window.foreign_networks,
                    "known_networks": len(key.baseline.networks),
                },
            )
        )
    if window.agent_novelty > 0:
        out.append(
            Contribution(
                "new_user_agents",
                IDENTITY,
                1.5 * math.log2(1 + window.agent_novelty),
                {
                    "new_user_agents": _first(window.new_user_agents) if explain else {},
                    "usual_user_agents": sorted(key.baseline.user_agents)[:5] if explain else [],
                },
            )
        )
    if window.off_hours >= _OFF_HOURS_MIN_CALLS:
        active = [hour for hour, count in enumerate(key.baseline.hours) if count and explain]
        out.append(
            Contribution(
                "off_hours", IDENTITY, 0.8, {"requests": window.off_hours, "usual_hours": active}
            )
        )
    out += _usage(key, window, peers, key_m, explain)
    out += _tradecraft(window, explain)
    return out


def _rotation(key: KeyState, window: KeyWindow) -> float:
    extra = window.foreign_networks - _ROTATION_FREE
    if extra <= 0:
        return 0.0
    known = len(key.baseline.networks)
    spread = 1.0 if known <= _CONCENTRATED else _CONCENTRATED / known
    return min(0.5 * extra * spread, 3.0)


def is_off_hours(baseline: Baseline, hour: int, key_m: float) -> bool:
    return (
        key_m >= 1.0
        and baseline.requests >= _OFF_HOURS_MIN_HISTORY
        and baseline.hour_share(hour) < _OFF_HOURS_SHARE
    )


def usual_price(baseline: Baseline, peers: Sequence[Baseline], key_m: float) -> float | None:
    """The key's usual priciest model; a young key may use what its peers use."""
    own = baseline.usual_price
    if key_m >= 1.0:
        return own
    theirs = next((p.usual_price for p in peers if p.usual_price is not None), None)
    candidates = [p for p in (own, theirs) if p is not None]
    return max(candidates) if candidates else None


def _usage(
    key: KeyState, window: KeyWindow, peers: Sequence[Baseline], key_m: float, explain: bool
) -> list[Contribution]:
    out: list[Contribution] = []
    if window.pricier:
        points = (math.log2(window.pricier_ratio) - 1.0) * min(1.0, window.pricier / 2)
        out.append(
            Contribution(
                "pricier_models",
                USAGE,
                max(0.0, min(points, 3.0)),
                {
                    "requests": window.pricier,
                    "price_ratio": round(window.pricier_ratio, 1),
                    "models": dict(window.models.most_common(5)) if explain else {},
                },
            )
        )
    calls = len(key.recent.calls)
    rate, spend = key.recent.per_minute()
    peer = peers[0] if peers else None
    base = key.baseline
    if peer is None and key_m < 1.0:
        return out
    if calls >= _MIN_RATE_CALLS:
        normal = reference(base.rate.high(), base.rate.n, peer.rate.high() if peer else None, key_m)
        usual = _USUAL_FACTOR * max(normal, _RATE_FLOOR)
        if rate > usual:
            out.append(
                Contribution(
                    "request_rate",
                    USAGE,
                    min(1.2 * math.log2(rate / usual), 3.5),
                    {"per_minute": round(rate, 1), "usual_per_minute": round(normal, 1)},
                )
            )
    if calls >= _MIN_SPEND_CALLS:
        normal = reference(
            base.spend.high(), base.spend.n, peer.spend.high() if peer else None, key_m
        )
        usual = _USUAL_FACTOR * max(normal, _SPEND_FLOOR)
        if spend > usual:
            out.append(
                Contribution(
                    "spend_rate",
                    USAGE,
                    min(1.3 * math.log2(spend / usual), 4.0),
                    {
                        "projected_usd_per_hour": round(spend * 60, 2),
                        "usual_usd_per_hour": round(normal * 60, 2),
                        "peer_usual_usd_per_hour": round(peer.spend.high() * 60, 2)
                        if peer
                        else None,
                    },
                )
            )
    return out


def _tradecraft(window: KeyWindow, explain: bool) -> list[Contribution]:
    out: list[Contribution] = []
    probes = 2.5 * window.invalid_max_tokens
    burst = window.validation_errors >= 3 and window.validation_errors >= 0.5 * window.requests
    if burst:
        probes += min(2.0 + 0.25 * (window.validation_errors - 3), 4.0)
    if probes:
        out.append(
            Contribution(
                "validation_probes",
                TRADECRAFT,
                probes,
                {
                    "invalid_max_tokens": window.invalid_max_tokens,
                    "validation_errors": window.validation_errors,
                    "error_types": dict(window.error_types.most_common(5)) if explain else {},
                },
            )
        )
    if window.key_checks:
        out.append(
            Contribution(
                "key_checks",
                TRADECRAFT,
                min(1.5 * window.key_checks, 3.0),
                {"key_checks": window.key_checks},
            )
        )
    enumeration = 1.5 * window.model_not_found + 0.6 * max(0.0, window.model_novelty - 2)
    if enumeration:
        out.append(
            Contribution(
                "model_enumeration",
                TRADECRAFT,
                enumeration,
                {
                    "model_not_found": window.model_not_found,
                    "new_models": _first(window.new_models) if explain else {},
                    "distinct_models": len(window.models),
                },
            )
        )
    return out


def _first(values: dict[str, object], limit: int = 10) -> dict[str, str]:
    # value -> first seen (ISO); at most `limit`, the earliest first.
    items = sorted(values.items(), key=lambda item: item[1])[:limit]  # type: ignore[arg-type,return-value]
    return {name: format_ts(at) for name, at in items}  # type: ignore[arg-type]
