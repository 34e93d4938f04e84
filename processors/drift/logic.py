"""Drift: does a scope's traffic still look like it did? Pure: no Kafka, no Faust.

A scope is `app:<app or ->/model:<model or ->`. Per scope, requests fill a window; when
it closes, every metric of the window is compared with a reference window:

- continuous metrics (prompt/response chars, input/output tokens, latency): PSI over
  quantile bins of the reference, confirmed by the two-sample KS test. PSI measures how
  much the distribution moved; KS says the move is not sampling noise (PSI alone is
  biased upwards on small windows). Both are blind to size: a tight latency distribution
  that moves from 4.4 to 4.9 ms has a huge PSI and a tiny p-value. So a metric drifts
  when PSI >= `psi_threshold`, the KS p-value < `ks_pvalue`, AND its median or p90 moved
  by at least `min_relative_shift` of the reference's and `min_shift` units (effect_of).
- rates (errors: status >= 400; refusals: finish_reason content_filter or refusal): PSI
  over the two-bin distribution (hit, miss), confirmed by Fisher's exact test at the
  same significance level (`ks_pvalue`): 0 errors in one window and 8 of 200 in the
  next is PSI 0.24 from eps smoothing alone, and happens by chance at a 2% error rate;
  and the rate must move by `min_rate_shift` (absolute).
- content (`prompt_signature`, see signature.py): PSI between the windows' mean n-gram
  bucket mass, against its own, lower threshold: averaging many prompts pulls the mass
  towards uniform, so prose -> code moves it by ~0.2 where two prose windows differ by
  ~0.001. Compared only when both windows hold `min_events` signed prompts.

A window closes after `window_events` requests, or once `window_s` of event time (ts_end)
has passed since its start and it holds `min_events`: checked at every request and, for a
scope that went quiet, by `close_due(now)` (the agent calls it every few seconds), so a
shift is reported within one window of the configured length even at low traffic. The
first window of a scope is its reference; "fixed" keeps it, "trailing" replaces it with
every closed window (a lasting change alerts once, then becomes the new normal).

Each closed window yields a DriftReport per metric and statistic, all rows of a metric
carrying that metric's verdict in `drifted`, and at most one Anomaly(kind="drift") per
scope and window naming every drifted metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np

from meterline.settings import DriftSettings
from processors.drift.stats import KsResult, ks, psi, psi_of_fractions, rates_pvalue
from processors.errors import Rejected, parse_event
from schemas.events.v1 import Anomaly, DriftReport, RequestEvent, format_ts
from schemas.signature import SIGNATURE_BUCKETS, signature_mass

__all__ = [
    "CONTINUOUS_METRICS",
    "RATE_METRICS",
    "REFUSAL_FINISH_REASONS",
    "SIGNATURE_METRIC",
    "STAGE",
    "DriftDetector",
    "InvalidSignature",
    "MetricDrift",
    "WindowedMetrics",
    "compare_windows",
    "request_from_payload",
    "scope_of",
]

STAGE = "processors.drift"
REFUSAL_FINISH_REASONS = frozenset({"content_filter", "refusal"})
CONTINUOUS_METRICS: dict[str, Callable[[RequestEvent], float]] = {
    "prompt_chars": lambda event: event.prompt_chars,
    "response_chars": lambda event: event.response_chars,
    "input_tokens": lambda event: event.input_tokens,
    "output_tokens": lambda event: event.output_tokens,
    "latency_ms": lambda event: event.latency_ms,
}
RATE_METRICS: dict[str, Callable[[RequestEvent], bool]] = {
    "error_rate": lambda event: event.status_code >= 400,
    "refusal_rate": lambda event: event.finish_reason in REFUSAL_FINISH_REASONS,
}
SIGNATURE_METRIC = "prompt_signature"
# Anomaly severity by the largest drifted PSI.
_SEVERITY_STEPS: tuple[tuple[float, Literal["high", "medium"]], ...] = (
    (1.0, "high"),
    (0.5, "medium"),
)


def scope_of(event: RequestEvent) -> str:
    model = event.model_used or event.model_requested or "-"
    return f"app:{event.app or '-'}/model:{model}"


class InvalidSignature(Rejected):
    """A RequestEvent whose prompt_signature cannot be read; `reason` goes to the dead letter."""


def request_from_payload(payload: bytes | None) -> RequestEvent | None:
    """Raw message value -> RequestEvent; None if it is no RequestEvent at all.

    The cost agent reads the same topic and dead-letters such payloads with the reason,
    so drift skips them: one dead letter per bad message, not one per agent. What only
    drift reads, a malformed prompt_signature, raises InvalidSignature.
    """
    event = parse_event(RequestEvent, payload)
    if event is not None and event.prompt_signature is not None:
        try:
            signature_mass(event.prompt_signature)
        except ValueError as exc:
            raise InvalidSignature(f"invalid RequestEvent: prompt_signature: {exc}") from exc
    return event


class WindowedMetrics:
    """One window of one scope: every metric's values, preallocated (memory is bounded)."""

    def __init__(self, capacity: int) -> None:
        self.count = 0
        self.start: datetime | None = None
        self.end: datetime | None = None
        self.signatures = 0
        self._values = np.empty((len(CONTINUOUS_METRICS), capacity), dtype=np.float64)
        self._hits = dict.fromkeys(RATE_METRICS, 0)
        self._signature_sum = np.zeros(SIGNATURE_BUCKETS, dtype=np.float64)

    def add(self, event: RequestEvent) -> None:
        at = event.ts_end
        self.start = at if self.start is None else min(self.start, at)
        self.end = at if self.end is None else max(self.end, at)
        for row, extract in enumerate(CONTINUOUS_METRICS.values()):
            self._values[row, self.count] = extract(event)
        for name, hit in RATE_METRICS.items():
            self._hits[name] += hit(event)
        if event.prompt_signature is not None:
            self._signature_sum += signature_mass(event.prompt_signature)
            self.signatures += 1
        self.count += 1

    def values(self, metric: str) -> np.ndarray:
        return self._values[list(CONTINUOUS_METRICS).index(metric), : self.count]

    def hits_and_misses(self, metric: str) -> tuple[int, int]:
        return self._hits[metric], self.count - self._hits[metric]

    def signature_mass(self) -> np.ndarray:
        return self._signature_sum / max(self.signatures, 1)


@dataclass(frozen=True)
class Shift:
    """How far a metric moved in its own units: the larger of its median's and its p90's
    moves (a rate: its share), from what to what, and whether that is large enough."""

    statistic: str  # "median", "p90" or "rate"
    reference: float
    current: float
    large: bool

    @property
    def change(self) -> float:
        return self.current - self.reference


@dataclass(frozen=True)
class MetricDrift:
    metric: str
    psi: float
    psi_threshold: float
    drifted: bool
    ks: KsResult | None = None  # continuous metrics only
    fisher_pvalue: float | None = None  # rates only
    shift: Shift | None = None  # continuous metrics and rates


def effect_of(
    metric: str, reference: np.ndarray, current: np.ndarray, config: DriftSettings
) -> Shift:
    """The median's or the p90's move, whichever is larger against its floor: at least
    `min_relative_shift` of the reference's value and `min_shift[metric]` units."""
    floor = config.min_shift.get(metric, 0.0)
    best: Shift | None = None
    best_ratio = -1.0
    for statistic, q in (("median", 50), ("p90", 90)):
        ref, cur = float(np.percentile(reference, q)), float(np.percentile(current, q))
        needed = max(floor, config.min_relative_shift * abs(ref), 1e-9)
        ratio = abs(cur - ref) / needed
        if ratio > best_ratio:
            best, best_ratio = Shift(statistic, ref, cur, ratio >= 1.0), ratio
    assert best is not None
    return best


def rate_effect(ref_counts: tuple[int, int], cur_counts: tuple[int, int], floor: float) -> Shift:
    ref = ref_counts[0] / max(sum(ref_counts), 1)
    cur = cur_counts[0] / max(sum(cur_counts), 1)
    return Shift("rate", ref, cur, abs(cur - ref) >= floor)


def compare_windows(
    reference: WindowedMetrics, current: WindowedMetrics, config: DriftSettings
) -> list[MetricDrift]:
    results = []
    for metric in CONTINUOUS_METRICS:
        ref, cur = reference.values(metric), current.values(metric)
        value, test = psi(ref, cur, bins=config.psi_bins), ks(ref, cur)
        shift = effect_of(metric, ref, cur, config)
        drifted = value >= config.psi_threshold and test.pvalue < config.ks_pvalue and shift.large
        results.append(MetricDrift(metric, value, config.psi_threshold, drifted, test, None, shift))
    for metric in RATE_METRICS:
        ref_counts, cur_counts = reference.hits_and_misses(metric), current.hits_and_misses(metric)
        value = psi_of_fractions(ref_counts, cur_counts)
        pvalue = rates_pvalue(ref_counts, cur_counts)
        shift = rate_effect(ref_counts, cur_counts, config.min_rate_shift)
        drifted = value >= config.psi_threshold and pvalue < config.ks_pvalue and shift.large
        results.append(
            MetricDrift(metric, value, config.psi_threshold, drifted, None, pvalue, shift)
        )
    if min(reference.signatures, current.signatures) >= config.min_events:
        value = psi_of_fractions(reference.signature_mass(), current.signature_mass())
        threshold = config.signature_psi_threshold
        results.append(MetricDrift(SIGNATURE_METRIC, value, threshold, value >= threshold))
    return results


@dataclass
class _Scope:
    current: WindowedMetrics
    reference: WindowedMetrics | None = None


class DriftDetector:
    """Windows per scope, in process memory; `observe` returns what a closing window yields.

    Scope names come from client traffic (app header, model name), so at most
    `max_scopes` are tracked; requests of further scopes are counted in `ignored_events`.
    """

    def __init__(self, config: DriftSettings, source: str = STAGE) -> None:
        self.config = config
        self.ignored_events = 0
        self._source = source
        self._scopes: dict[str, _Scope] = {}

    def observe(self, event: RequestEvent) -> list[DriftReport | Anomaly]:
        scope = scope_of(event)
        state = self._scopes.get(scope)
        if state is None:
            if len(self._scopes) >= self.config.max_scopes:
                self.ignored_events += 1
                return []
            state = self._scopes[scope] = _Scope(self._new_window())
        out: list[DriftReport | Anomaly] = []
        if self._time_is_up(state.current, event.ts_end):
            out += self._close(scope, state)
        state.current.add(event)
        if state.current.count >= self.config.window_events:
            out += self._close(scope, state)
        return out

    def close_due(self, now: datetime) -> list[DriftReport | Anomaly]:
        """Close the windows whose time is up although no request came to close them."""
        out: list[DriftReport | Anomaly] = []
        for scope, state in self._scopes.items():
            if self._time_is_up(state.current, now):
                out += self._close(scope, state)
        return out

    def forget(self, gone: Callable[[str], bool]) -> int:
        """Drops the scopes `gone` says another worker holds now; returns how many."""
        dropped = [scope for scope in self._scopes if gone(scope)]
        for scope in dropped:
            del self._scopes[scope]
        return len(dropped)

    def _new_window(self) -> WindowedMetrics:
        return WindowedMetrics(self.config.window_events)

    def _time_is_up(self, window: WindowedMetrics, at: datetime) -> bool:
        if self.config.window_s <= 0 or window.start is None:
            return False
        elapsed = (at - window.start).total_seconds()
        return window.count >= self.config.min_events and elapsed >= self.config.window_s

    def _close(self, scope: str, state: _Scope) -> list[DriftReport | Anomaly]:
        closed, reference = state.current, state.reference
        state.current = self._new_window()
        if reference is None or self.config.reference == "trailing":
            state.reference = closed
        if reference is None:
            return []  # the scope's first window is its baseline
        results = compare_windows(reference, closed, self.config)
        out: list[DriftReport | Anomaly] = self._reports(scope, reference, closed, results)
        if any(result.drifted for result in results):
            out.append(self._anomaly(scope, reference, closed, results))
        return out

    def _reports(
        self,
        scope: str,
        reference: WindowedMetrics,
        current: WindowedMetrics,
        results: list[MetricDrift],
    ) -> list[DriftReport | Anomaly]:
        common: dict[str, Any] = {
            "scope": scope,
            "window_start": current.start,
            "window_end": current.end,
            "reference_start": reference.start,
            "reference_end": reference.end,
            "source": self._source,
        }
        reports: list[DriftReport | Anomaly] = []
        for result in results:
            reports.append(
                DriftReport(
                    metric=result.metric,
                    statistic="psi",
                    value=result.psi,
                    threshold=result.psi_threshold,
                    drifted=result.drifted,
                    **common,
                )
            )
            if result.ks is not None:
                reports.append(
                    DriftReport(
                        metric=result.metric,
                        statistic="ks",
                        value=result.ks.pvalue,  # drifts below the threshold
                        threshold=self.config.ks_pvalue,
                        drifted=result.drifted,
                        **common,
                    )
                )
        return reports

    def _anomaly(
        self,
        scope: str,
        reference: WindowedMetrics,
        current: WindowedMetrics,
        results: list[MetricDrift],
    ) -> Anomaly:
        drifted = [result for result in results if result.drifted]
        score = max(result.psi for result in drifted)
        evidence = {
            "psi": {result.metric: round(result.psi, 4) for result in results},
            "ks": {
                result.metric: {
                    "statistic": round(result.ks.statistic, 4),
                    "pvalue": result.ks.pvalue,
                }
                for result in results
                if result.ks is not None
            },
            "fisher_pvalue": {
                result.metric: result.fisher_pvalue
                for result in results
                if result.fisher_pvalue is not None
            },
            # In the metric's own units: what moved, from what to what.
            "shift": {
                result.metric: {
                    "statistic": result.shift.statistic,
                    "from": round(result.shift.reference, 4),
                    "to": round(result.shift.current, 4),
                    "large": result.shift.large,
                }
                for result in results
                if result.shift is not None
            },
            "window_events": current.count,
            "reference_events": reference.count,
            "window_signatures": current.signatures,
            "reference_signatures": reference.signatures,
            "window": [_ts(current.start), _ts(current.end)],
            "reference_window": [_ts(reference.start), _ts(reference.end)],
            "reference": self.config.reference,
        }
        return Anomaly(
            kind="drift",
            subject=f"scope:{scope}",
            score=round(score, 4),
            severity=_severity(score),
            signals=sorted(result.metric for result in drifted),
            evidence=evidence,
            recommended_action="alert",
            source=self._source,
        )


def _severity(score: float) -> Literal["low", "medium", "high"]:
    for floor, severity in _SEVERITY_STEPS:
        if score >= floor:
            return severity
    return "low"


def _ts(value: datetime | None) -> str | None:
    return format_ts(value) if value is not None else None
