"""The rule signals of a key's window, and how signals make a score and a severity. Pure.

Each signal has a strength: weak (new network, new user agent, off hours, a mildly odd
IsolationForest score), medium (validation-error bursts, a volume spike, pricier
models, many networks, a very odd forest score), strong (invalid `max_tokens` probes,
model enumeration with not-found models). Designed for precision:

- a single weak signal is never reported (keys roam; people work late);
- medium needs one medium signal or two weak ones (a long-lived key on a new network
  with a new client: the credential moved);
- high needs one strong signal, or two signals of which one is at least medium;
- critical needs three signals of which two are at least medium.

The score is a noisy-or of the signals' weights, so it grows with the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meterline.settings import LlmjackingSettings
from processors.llmjacking.profile import KeyProfile, KeyWindow
from schemas.events.v1 import format_ts

__all__ = [
    "MEDIUM",
    "STRONG",
    "WEAK",
    "Signal",
    "combine",
    "forest_signal",
    "rule_signals",
]

WEAK, MEDIUM, STRONG = 1, 2, 3
_WEIGHT = {WEAK: 0.3, MEDIUM: 0.5, STRONG: 0.8}
_VOLUME_MIN_REQUESTS = 10  # per minute: below this no rate is "far above" anything
_VOLUME_MIN_TOKENS = 20_000
_BASELINE_MINUTES = 10  # active minutes learned before volume is judged
_OFF_HOURS_SHARE = 0.01  # of the key's learned requests in that hour (+-1)
_OFF_HOURS_MIN_HISTORY = 200
_OFF_HOURS_MIN_REQUESTS = 3
_PROBE_SHARE = 0.5  # validation errors must be most of the window's requests
_EXPENSIVE_MIN_REQUESTS = 3
_NOT_FOUND_STRONG = 2
_INVALID_MAX_TOKENS_STRONG = 2
_FOREST_MEDIUM_MARGIN = 0.1


@dataclass(frozen=True)
class Signal:
    name: str
    strength: int
    evidence: dict[str, Any] = field(default_factory=dict)


def rule_signals(
    profile: KeyProfile, window: KeyWindow, mature: bool, config: LlmjackingSettings
) -> list[Signal]:
    signals = []
    probes = _validation_probes(window, config)
    if probes is not None:
        signals.append(probes)
    enumeration = _enumeration(window, config)
    if enumeration is not None:
        signals.append(enumeration)
    distinct = len(window.networks)
    if distinct >= max(config.many_networks, 2 * profile.max_window_networks + 1):
        signals.append(
            Signal(
                "many_networks",
                MEDIUM,
                {"networks": distinct, "usual_max_per_window": profile.max_window_networks},
            )
        )
    if not mature:
        return signals  # the rest compares with a learned normal
    if window.new_networks:
        signals.append(Signal("new_network", WEAK, {"new_networks": _first(window.new_networks)}))
    if window.new_user_agents:
        signals.append(
            Signal("new_user_agent", WEAK, {"new_user_agents": _first(window.new_user_agents)})
        )
    volume = _volume(profile, window, config)
    if volume is not None:
        signals.append(volume)
    if window.expensive >= _EXPENSIVE_MIN_REQUESTS and profile.usual_price is not None:
        signals.append(
            Signal(
                "expensive_models",
                MEDIUM,
                {
                    "requests": window.expensive,
                    "usual_price_usd": profile.usual_price,
                    "ratio": config.expensive_ratio,
                },
            )
        )
    if window.off_hours >= _OFF_HOURS_MIN_REQUESTS:
        active = [hour for hour, count in enumerate(profile.hours) if count]
        signals.append(
            Signal(
                "off_hours",
                WEAK,
                {"requests": window.off_hours, "hours": sorted(window.hours), "usual": active},
            )
        )
    return signals


def is_off_hours(profile: KeyProfile, hour: int, mature: bool) -> bool:
    return (
        mature
        and profile.requests >= _OFF_HOURS_MIN_HISTORY
        and profile.hour_share(hour) < _OFF_HOURS_SHARE
    )


def is_expensive(profile: KeyProfile, price: float | None, config: LlmjackingSettings) -> bool:
    usual = profile.usual_price
    return usual is not None and price is not None and price > usual * config.expensive_ratio


def is_validation_error(status_code: int, error_type: str | None) -> bool:
    return status_code in (400, 422) or (error_type or "").startswith("invalid_request")


def forest_signal(score: float | None, config: LlmjackingSettings) -> Signal | None:
    if score is None or score < config.iforest_threshold:
        return None
    strong = score >= config.iforest_threshold + _FOREST_MEDIUM_MARGIN
    return Signal("isolation_forest", MEDIUM if strong else WEAK, {"score": round(score, 4)})


def combine(signals: list[Signal]) -> tuple[float, int]:
    """(score in [0, 1], severity rank: 0 low .. 3 critical)."""
    miss = 1.0
    for signal in signals:
        miss *= 1 - _WEIGHT[signal.strength]
    strengths = sorted((signal.strength for signal in signals), reverse=True)
    medium_plus = sum(1 for strength in strengths if strength >= MEDIUM)
    if len(strengths) >= 3 and medium_plus >= 2:
        rank = 3
    elif (strengths and strengths[0] == STRONG) or (len(strengths) >= 2 and medium_plus >= 1):
        rank = 2
    elif medium_plus >= 1 or len(strengths) >= 2:
        rank = 1
    else:
        rank = 0
    return round(1 - miss, 4), rank


def _validation_probes(window: KeyWindow, config: LlmjackingSettings) -> Signal | None:
    evidence = {
        "validation_errors": window.validation_errors,
        "invalid_max_tokens": window.invalid_max_tokens,
        "error_types": dict(window.error_types.most_common(5)),
    }
    if window.invalid_max_tokens >= _INVALID_MAX_TOKENS_STRONG:
        return Signal("validation_probes", STRONG, evidence)
    burst = window.validation_errors >= config.probe_errors
    if burst and window.validation_errors >= _PROBE_SHARE * window.requests:
        return Signal("validation_probes", MEDIUM, evidence)
    return None


def _enumeration(window: KeyWindow, config: LlmjackingSettings) -> Signal | None:
    evidence = {
        "new_models": _first(window.new_models),
        "distinct_models": len(window.models),
        "model_not_found": window.model_not_found,
    }
    if window.model_not_found >= config.enumeration_models:
        return Signal("model_enumeration", STRONG, evidence)
    if len(window.new_models) >= config.enumeration_models:
        strong = window.model_not_found >= _NOT_FOUND_STRONG
        return Signal("model_enumeration", STRONG if strong else MEDIUM, evidence)
    return None


def _volume(profile: KeyProfile, window: KeyWindow, config: LlmjackingSettings) -> Signal | None:
    if profile.rate.n < _BASELINE_MINUTES:
        return None
    requests_high = (
        window.peak_minute_requests >= max(_VOLUME_MIN_REQUESTS, 3 * profile.rate.mean)
        and window.peak_volume_z >= config.volume_z
    )
    tokens_high = (
        window.peak_minute_tokens >= max(_VOLUME_MIN_TOKENS, 3 * profile.tokens.mean)
        and window.peak_tokens_z >= config.volume_z
    )
    if not (requests_high or tokens_high):
        return None
    return Signal(
        "volume_spike",
        MEDIUM,
        {
            "peak_minute_requests": window.peak_minute_requests,
            "baseline_requests_per_minute": round(profile.rate.mean, 2),
            "requests_z": round(window.peak_volume_z, 1),
            "peak_minute_tokens": window.peak_minute_tokens,
            "baseline_tokens_per_minute": round(profile.tokens.mean, 1),
            "tokens_z": round(window.peak_tokens_z, 1),
        },
    )


def _first(values: dict[str, Any], limit: int = 10) -> dict[str, str]:
    # value -> first seen (ISO); at most `limit`, the earliest first.
    items = sorted(values.items(), key=lambda item: item[1])[:limit]
    return {name: format_ts(at) for name, at in items}
