"""Many drift scopes, in process: the drift detector's pure logic against drawn shifts
and stable traffic.

Each draw is one scope (drift_traffic.py: rate, prompts, answers, latency, errors and
refusals all drawn) fed to its own `DriftDetector` in event-time order (ts_end, the
detector's clock), with `close_due(now)` every 5 s of event time as the drift agent
calls it. The scope runs 3-6 windows before the shift (a window being `window_s`, or as
long as `min_events` requests take at a low rate), then `windows_after` windows more; it
was busy before the detector started and stays busy after the end (no edge windows).
Per seed: `draws` shift draws (the kind cycles with the index over SHIFT_KINDS, the
size is drawn from its real range), `stable` draws without a shift, and `sub_threshold`
draws with a shift below the detector's effect floors.

A shift is reported by the first Anomaly(kind="drift") at or after its start naming one
of its metrics (SHIFT_METRICS); its delay runs from the shift's start (requests that
start from then on are shifted) to the event time at which the detector returned that
anomaly: the ts_end of the request that closed the window, or the `close_due` time. It
is reported within one window when the delay is at most `window_s` plus the 5 s between
two `close_due` calls (a quiet window closes up to that late). Any drift anomaly of a
stable draw, or before the shift of a shift draw, is a false alarm.

Detector settings are the production defaults, fixed before any draw; the draws of seed
`s` are `random.Random(f"{s}:<category>:{i}")`, so a seed is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from meterline.evaluate.draws import T0
from meterline.evaluate.drift_traffic import (
    SHIFT_KINDS,
    SHIFT_METRICS,
    SUB_THRESHOLD_SIZES,
    Scope,
    Shift,
    draw_scope,
    draw_shift,
    scope_requests,
)
from meterline.settings import DriftSettings
from processors.drift.logic import DriftDetector
from schemas.events.v1 import Anomaly, DriftReport

__all__ = [
    "DriftDraw",
    "DriftDrawConfig",
    "draws_per_category",
    "drift_draw",
    "watch_scope",
]

_BEYOND_S = 120.0  # traffic before and after the scored span (longer than nearly any request)


@dataclass(frozen=True)
class DriftDrawConfig:
    close_every_s: float = 5.0  # the drift agent's close_due timer
    windows_before: tuple[float, float] = (3.0, 6.0)
    windows_after: float = 3.0
    detector: DriftSettings = field(default_factory=DriftSettings)

    def window_length(self, rate: float) -> float:
        """How long a window lasts at `rate` when time closes it (min_events at low rates)."""
        return max(self.detector.window_s, self.detector.min_events / rate)

    @property
    def in_time_s(self) -> float:
        return self.detector.window_s + self.close_every_s


@dataclass
class DriftDraw:
    seed: int
    index: int
    category: str
    scope: Scope
    shift: Shift | None
    duration_s: float
    window_s: float  # the configured window length
    in_time_s: float  # reported within one window: delay at most this
    requests: int = 0
    alerts: list[tuple[float, list[str]]] = field(default_factory=list)  # (s, metrics)

    @property
    def delay_s(self) -> float | None:
        """Shift start -> the first anomaly naming one of its metrics (None: never)."""
        if self.shift is None:
            return None
        wanted = SHIFT_METRICS[self.shift.kind]
        for at, metrics in self.alerts:
            if at >= self.shift.at_s and wanted.intersection(metrics):
                return at - self.shift.at_s
        return None

    @property
    def reported(self) -> bool:
        return self.delay_s is not None

    @property
    def in_time(self) -> bool:
        delay = self.delay_s
        return delay is not None and delay <= self.in_time_s

    @property
    def false_alarms(self) -> list[tuple[float, list[str]]]:
        start = self.shift.at_s if self.shift is not None else float("inf")
        return [alert for alert in self.alerts if alert[0] < start]


def draws_per_category(draws: int) -> dict[str, int]:
    """Per seed: `draws` shifts, half as many stable scopes (at least 2), a tenth as many
    sub-threshold shifts (at least 1)."""
    return {"shift": draws, "stable": max(2, draws // 2), "sub_threshold": max(1, draws // 10)}


def drift_draw(seed: int, index: int, category: str, config: DriftDrawConfig) -> DriftDraw:
    """One scope: stable, or with a real or sub-threshold shift."""
    rng = random.Random(f"{seed}:{category}:{index}")
    scope = draw_scope(rng, f"app-{seed}-{category}-{index}")
    window = config.window_length(scope.rate)
    before = rng.uniform(*config.windows_before) * window
    duration = before + config.windows_after * window
    shift = None
    if category == "shift":
        shift = draw_shift(rng, SHIFT_KINDS[index % len(SHIFT_KINDS)], before)
    elif category == "sub_threshold":
        kinds = sorted(SUB_THRESHOLD_SIZES)
        shift = draw_shift(rng, kinds[index % len(kinds)], before, real=False)
    draw = DriftDraw(
        seed,
        index,
        category,
        scope,
        shift,
        duration,
        config.detector.window_s,
        config.in_time_s,
    )
    return watch_scope(draw, config, rng)


def watch_scope(draw: DriftDraw, config: DriftDrawConfig, rng: random.Random) -> DriftDraw:
    """Feeds `draw`'s scope to a fresh detector and records its drift anomalies."""
    # The scope was busy before the detector saw it and stays busy after the end: by
    # ts_end, a first or last window would otherwise hold the fast or the slow requests.
    duration = draw.duration_s
    traffic = scope_requests(rng, draw.scope, -_BEYOND_S, duration + _BEYOND_S, draw.shift)
    end = T0 + timedelta(seconds=duration)
    requests = sorted((e for e in traffic if T0 <= e.ts_end <= end), key=lambda e: e.ts_end)
    draw.requests = len(requests)
    detector = DriftDetector(config.detector)
    tick = T0 + timedelta(seconds=rng.uniform(0.0, config.close_every_s))
    every = timedelta(seconds=config.close_every_s)

    def note(outputs: list[DriftReport | Anomaly], at_s: float) -> None:
        for output in outputs:
            if isinstance(output, Anomaly):
                draw.alerts.append((at_s, list(output.signals)))

    for event in requests:
        while tick <= event.ts_end:
            note(detector.close_due(tick), (tick - T0).total_seconds())
            tick += every
        note(detector.observe(event), (event.ts_end - T0).total_seconds())
    while tick <= end:
        note(detector.close_due(tick), (tick - T0).total_seconds())
        tick += every
    return draw
