"""Drift: does a scope's traffic still look like it did? Pure: no Kafka, no Faust.

A scope is `app:<app or ->/model:<model or ->`. Per scope, requests fill a window, which
is judged against a reference; a metric drifts when the move is significant (a test's
p-value below `pvalue`) AND large in the metric's own units:

- continuous metrics (prompt/response chars, input/output tokens, latency): KS (any
  change of shape) or Mann-Whitney U (a location shift; more power on few requests),
  Bonferroni over the two; and the median or p90 moved by at least `min_relative_shift`
  of the reference's and `min_shift` units (effect_of). A tight latency distribution
  moving from 4.4 to 4.9 ms is significant and nothing in milliseconds.
- rates (errors: status >= 400; refusals: finish_reason content_filter or refusal):
  Fisher's exact test, and the rate moved by `min_rate_shift` (absolute). Not PSI: on a
  two-bin distribution it hardly moves for a rate that quintuples (1.4% -> 8%: 0.10).
- content (`prompt_signature`, see signature.py), per prompt, not averaged (averaging
  pulls the mass towards uniform and hid most of a 70% change): each prompt's L1
  distance from the reference's mean signature. Current prompts ranking farther than
  the reference's own (Mann-Whitney, one-sided), and the share of prompts unlike the
  reference's, 2 P(current farther than reference) - 1, at least `min_content_shift`.
  Compared when the reference holds `min_events` signed prompts and the window half.

PSI is still reported per metric (DriftReport rows, evidence, severity): how far a
distribution moved, biased upwards on small windows, so not what a verdict rests on.

When: a window closes after `window_events` requests, or once `window_s` of event time
(ts_end) has passed since its start and it holds `min_events`. It is judged whole and
by its later half, each at `pvalue / 2`: a shift that began mid-window is seen undiluted
and reported as the window closes. While it fills, the open window is judged whole every
`window_s / EARLY_CHECKS` of event time once it holds `min_events / 2` (`observe`, and
`close_due(now)`, which the agent calls every few seconds): a shift that began late in
the previous window, or at low traffic, is reported before a whole window has passed. A
window that drifts closes at once; stable ones are reported only when they close.

False alarms: a scope-day brings ~10^4 judgments (checks and closes), and on stable
traffic about 4 metric tests per judgment both pass the effect floors and give uniform
p-values (measured on 100 stable drawn scopes, seeds 100-109 of the evaluation's
generator). So `pvalue` 2e-6 (1e-6 a test) is ~0.04 expected false alarms per scope-day.

The reference: "fixed" is the scope's first window. "trailing" (default) pools the
newest windows judged stable: at most `reference_windows`, fewer once the newer ones hold
`reference_events` (more requests make the tests stronger at low traffic; memory is
bounded). A window that moved by a floor at p < `hold_pvalue` but is not yet drift is
held out of the reference (which would otherwise absorb a shift bit by bit) and judged
again pooled with the next windows, up to `reference_windows` of them. After an alert
the old reference judges one more window, where only metrics not yet named can alert
(errors that climb after latency did); then that window, all after the change, is the
new reference: a lasting change alerts once, then is the new normal.

Each closed window yields a DriftReport per metric and statistic (PSI; the KS p-value
for continuous metrics), all rows of a metric carrying its verdict in `drifted`, and at
most one Anomaly(kind="drift") naming the metrics that newly drifted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np

from meterline.settings import DriftSettings
from processors.drift.stats import (
    KsResult,
    ks,
    mann_whitney,
    psi,
    psi_of_fractions,
    quantiles_of_sorted,
    rates_pvalue,
)
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
    "Sample",
    "WindowedMetrics",
    "compare_windows",
    "judge",
    "psi_of",
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
EARLY_CHECKS = 4  # an open window is judged every window_s / EARLY_CHECKS (_check_early)
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
    """One window of one scope being filled: every request's figures, preallocated (memory
    is bounded); `sample()` copies out what was filled, for comparing and pooling."""

    def __init__(self, capacity: int) -> None:
        self.count = 0
        self.start: datetime | None = None
        self._times: list[datetime] = []
        self._values = np.empty((len(CONTINUOUS_METRICS), capacity), dtype=np.float64)
        self._hits = np.zeros((len(RATE_METRICS), capacity), dtype=bool)
        # Unsigned prompts keep a row of NaN, so a part of the window slices like the rest.
        # float16: the signature's shares are bytes (1/255 steps); half the memory of float32.
        self._signatures = np.empty((capacity, SIGNATURE_BUCKETS), dtype=np.float16)

    def add(self, event: RequestEvent) -> None:
        at = event.ts_end
        self.start = at if self.start is None else min(self.start, at)
        self._times.append(at)
        for row, extract in enumerate(CONTINUOUS_METRICS.values()):
            self._values[row, self.count] = extract(event)
        for row, hit in enumerate(RATE_METRICS.values()):
            self._hits[row, self.count] = hit(event)
        signature = event.prompt_signature
        self._signatures[self.count] = np.nan if signature is None else signature_mass(signature)
        self.count += 1

    def sample(self) -> Sample:
        n = self.count
        return Sample(
            tuple(self._times),
            self._values[:, :n].copy(),
            self._hits[:, :n].copy(),
            self._signatures[:n].copy(),
        )


@dataclass(frozen=True)
class Sample:
    """Requests to compare: one closed window, its later half, or a pooled reference."""

    times: tuple[datetime, ...]  # ts_end, in arrival order
    values: np.ndarray  # (continuous metric, request)
    hits: np.ndarray  # (rate metric, request), bool
    signatures: np.ndarray  # (request, bucket) masses, NaN rows for unsigned prompts

    @property
    def count(self) -> int:
        return len(self.times)

    @property
    def start(self) -> datetime | None:
        return min(self.times, default=None)

    @property
    def end(self) -> datetime | None:
        return max(self.times, default=None)

    @property
    def signed(self) -> np.ndarray:
        return self.signatures[~np.isnan(self.signatures[:, 0])].astype(np.float64)

    def metric(self, name: str) -> np.ndarray:
        return self.values[list(CONTINUOUS_METRICS).index(name)]

    def hits_and_misses(self, name: str) -> tuple[int, int]:
        hits = int(self.hits[list(RATE_METRICS).index(name)].sum())
        return hits, self.count - hits

    def later_half(self) -> Sample:
        # Requests arrive in about ts_end order, so the later half by count is by time too.
        cut = self.count // 2
        return Sample(
            self.times[cut:], self.values[:, cut:], self.hits[:, cut:], self.signatures[cut:]
        )

    @staticmethod
    def pooled(samples: list[Sample]) -> Sample:
        """Several samples as one."""
        return Sample(
            tuple(at for sample in samples for at in sample.times),
            np.concatenate([s.values for s in samples], axis=1),
            np.concatenate([s.hits for s in samples], axis=1),
            np.concatenate([s.signatures for s in samples]),
        )


@dataclass(frozen=True)
class Shift:
    """How far a metric moved in its own units: the larger of its median's and its p90's
    moves (a rate: its share; content: the share of prompts unlike the reference's), from
    what to what, and whether that is large enough."""

    statistic: str  # "median", "p90", "rate" or "unlike_share"
    reference: float
    current: float
    large: bool

    @property
    def change(self) -> float:
        return self.current - self.reference


@dataclass(frozen=True)
class MetricDrift:
    metric: str
    drifted: bool
    pvalue: float  # of the test the verdict rests on
    shift: Shift
    part: str = "window"  # or "later_half": the part of the window that was compared
    ks: KsResult | None = None  # continuous metrics only
    fisher_pvalue: float | None = None  # rates only


def effect_of(
    metric: str, reference: np.ndarray, current: np.ndarray, config: DriftSettings
) -> Shift:
    """The median's or the p90's move, whichever is larger against its floor: at least
    `min_relative_shift` of the reference's value and `min_shift[metric]` units."""
    floor = config.min_shift.get(metric, 0.0)
    best: Shift | None = None
    best_ratio = -1.0
    quantiles = np.array([0.5, 0.9])
    refs = quantiles_of_sorted(np.sort(reference), quantiles)
    curs = quantiles_of_sorted(np.sort(current), quantiles)
    for statistic, ref, cur in zip(("median", "p90"), refs.tolist(), curs.tolist(), strict=True):
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


def content_distances(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each prompt's L1 distance from the reference prompts' mean signature; a reference
    prompt's from the mean of the others, so both sides are measured out of sample."""
    total = reference.sum(axis=0)
    n = reference.shape[0]
    leave_one_out = (total - reference) / (n - 1)
    return (
        np.abs(reference - leave_one_out).sum(axis=1),
        np.abs(current - total / n).sum(axis=1),
    )


def compare_content(
    reference: np.ndarray, current: np.ndarray, config: DriftSettings, alpha: float
) -> MetricDrift:
    """Per prompt, not averaged: new content is prompts far from the reference's mean
    signature. Significant when current prompts rank farther than the reference's own
    (Mann-Whitney U, one-sided). Large when the share of prompts unlike the reference's,
    2 * P(a current prompt is farther than a reference prompt) - 1 (0 when nothing
    changed; the new content's share when it is farther than all the old), reaches
    `min_content_shift`. (Averaged masses hid most content changes.)"""
    ref_far, cur_far = content_distances(reference, current)
    test = mann_whitney(ref_far, cur_far, alternative="less")
    share = 2 * test.superiority - 1
    shift = Shift("unlike_share", 0.0, share, share >= config.min_content_shift)
    return MetricDrift(SIGNATURE_METRIC, test.pvalue < alpha and shift.large, test.pvalue, shift)


def compare_windows(
    reference: Sample, current: Sample, config: DriftSettings, alpha: float | None = None
) -> list[MetricDrift]:
    """Every metric of `current` against `reference`: drifted when significant at `alpha`
    (default `config.pvalue`) and large in the metric's own units."""
    alpha = config.pvalue if alpha is None else alpha
    results = []
    for metric in CONTINUOUS_METRICS:
        ref, cur = reference.metric(metric), current.metric(metric)
        test = ks(ref, cur)
        # Either test may see the move (shape or location): Bonferroni over the two.
        pvalue = min(1.0, 2 * min(test.pvalue, mann_whitney(ref, cur).pvalue))
        shift = effect_of(metric, ref, cur, config)
        drifted = pvalue < alpha and shift.large
        results.append(MetricDrift(metric, drifted, pvalue, shift, ks=test))
    for metric in RATE_METRICS:
        ref_counts, cur_counts = reference.hits_and_misses(metric), current.hits_and_misses(metric)
        pvalue = rates_pvalue(ref_counts, cur_counts)
        shift = rate_effect(ref_counts, cur_counts, config.min_rate_shift)
        drifted = pvalue < alpha and shift.large
        results.append(MetricDrift(metric, drifted, pvalue, shift, fisher_pvalue=pvalue))
    ref_signed, cur_signed = reference.signed, current.signed
    if ref_signed.shape[0] >= config.min_events and cur_signed.shape[0] >= config.min_events // 2:
        results.append(compare_content(ref_signed, cur_signed, config, alpha))
    return results


def psi_of(reference: Sample, current: Sample, metric: str, config: DriftSettings) -> float:
    """PSI of one metric, for the reports (how far it moved; not what is judged by)."""
    if metric in CONTINUOUS_METRICS:
        return psi(reference.metric(metric), current.metric(metric), bins=config.psi_bins)
    if metric in RATE_METRICS:
        return psi_of_fractions(reference.hits_and_misses(metric), current.hits_and_misses(metric))
    return psi_of_fractions(reference.signed.mean(axis=0), current.signed.mean(axis=0))


def judge(
    reference: Sample, closed: Sample, config: DriftSettings, halves: bool = True
) -> list[MetricDrift]:
    """The closed window, and (`halves`) its later half, against the reference, each at half
    the significance level (Bonferroni). The later half sees a shift that began mid-window
    undiluted by the requests before it, so it is reported when this window closes rather
    than one window later. A metric's row is the part that drifted, else the whole."""
    alpha = config.pvalue / 2
    whole = compare_windows(reference, closed, config, alpha)
    if not halves:
        return whole
    later = {r.metric: r for r in compare_windows(reference, closed.later_half(), config, alpha)}
    out = []
    for result in whole:
        half = later.get(result.metric)
        if not result.drifted and half is not None and half.drifted:
            result = replace(half, part="later_half")
        out.append(result)
    return out


@dataclass
class _Scope:
    current: WindowedMetrics
    stable: deque[Sample] = field(default_factory=deque)  # the reference's windows, oldest first
    reference: Sample | None = None  # `stable` pooled
    checked_at: datetime | None = None  # the open window's last early check
    alerted: frozenset[str] = frozenset()  # metrics alerted against `reference`
    held: list[Sample] = field(default_factory=list)  # closed, suspect, judged again


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
        else:
            out += self._check_early(scope, state, event.ts_end)
        return out

    def close_due(self, now: datetime) -> list[DriftReport | Anomaly]:
        """Close the windows whose time is up although no request came to close them, and
        check the open windows that are due for it (`_check_early`)."""
        out: list[DriftReport | Anomaly] = []
        for scope, state in self._scopes.items():
            if self._time_is_up(state.current, now):
                out += self._close(scope, state)
            else:
                out += self._check_early(scope, state, now)
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

    def _check_early(self, scope: str, state: _Scope, at: datetime) -> list[DriftReport | Anomaly]:
        """Judges the open window every `window_s / EARLY_CHECKS` while it fills, once it
        holds half of `min_events`: a shift that began late in the previous window is
        then seen in this one before a whole window has passed, and a quiet scope whose
        window waits for `min_events` is judged on what it has. A drifted window closes
        at once; a stable one stays open (only closed windows are reported)."""
        window, reference = state.current, state.reference
        if (
            self.config.window_s <= 0
            or window.start is None
            or reference is None
            or reference.count < self.config.min_events
            or window.count < max(2, self.config.min_events // 2)
        ):
            return []
        since = state.checked_at or window.start
        if (at - since).total_seconds() < self.config.window_s / EARLY_CHECKS:
            return []
        state.checked_at = at
        # The whole open window only: it is young, and fewer tests keep false alarms rare.
        judged = Sample.pooled([*state.held, window.sample()])
        results = judge(reference, judged, self.config, halves=False)
        if not self._new_drift(state, results):
            return []
        return self._close(scope, state, results)

    def _close(
        self, scope: str, state: _Scope, results: list[MetricDrift] | None = None
    ) -> list[DriftReport | Anomaly]:
        closed, reference = state.current.sample(), state.reference
        state.current, state.checked_at = self._new_window(), None
        if reference is None or reference.count < self.config.min_events:
            self._learn(state, closed)  # a baseline still being gathered: nothing to judge
            return []
        judged = Sample.pooled([*state.held, closed])
        results = judge(reference, judged, self.config) if results is None else results
        psis = {r.metric: psi_of(reference, judged, r.metric, self.config) for r in results}
        out: list[DriftReport | Anomaly] = self._reports(scope, reference, judged, results, psis)
        new = self._new_drift(state, results)
        if new:
            out.append(self._anomaly(scope, reference, judged, results, psis, new))
        if self.config.reference == "fixed":
            return out
        if state.alerted:
            # The window after an alert is all after the change: the new normal.
            state.stable.clear()
            state.alerted, state.held = frozenset(), []
            self._learn(state, closed)
        elif new:
            # The old reference judges one more window, so a metric that moves a little
            # later than the first (errors after latency) is still named, once.
            state.alerted, state.held = frozenset(new), []
        elif self._suspect(results) and len(state.held) + 1 < self.config.reference_windows:
            # Moved by its floor but not yet significant: kept out of the reference (which
            # would absorb a real shift bit by bit) and judged again with the next window.
            state.held.append(closed)
        else:
            for sample in [*state.held, closed]:
                self._learn(state, sample)
            state.held = []
        return out

    def _suspect(self, results: list[MetricDrift]) -> bool:
        return any(r.shift.large and r.pvalue < self.config.hold_pvalue for r in results)

    def _new_drift(self, state: _Scope, results: list[MetricDrift]) -> set[str]:
        """Drifted metrics not yet alerted against this reference ("fixed": every one)."""
        drifted = {result.metric for result in results if result.drifted}
        return drifted if self.config.reference == "fixed" else drifted - state.alerted

    def _learn(self, state: _Scope, sample: Sample) -> None:
        """Adds a window judged stable to the reference: the newest `reference_windows`,
        fewer when the newer ones hold `reference_events` already (memory is bounded)."""
        stable = state.stable
        stable.append(sample)
        while len(stable) > self.config.reference_windows or (
            sum(s.count for s in stable) - stable[0].count >= self.config.reference_events
        ):
            stable.popleft()
        state.reference = Sample.pooled(list(stable))

    def _reports(
        self,
        scope: str,
        reference: Sample,
        current: Sample,
        results: list[MetricDrift],
        psis: dict[str, float],
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
                    value=psis[result.metric],
                    threshold=self.config.psi_threshold,
                    drifted=result.drifted,
                    **common,
                )
            )
            if result.ks is not None:
                reports.append(
                    DriftReport(
                        metric=result.metric,
                        statistic="ks",
                        value=result.ks.pvalue,  # significant below the threshold
                        threshold=self.config.pvalue,
                        drifted=result.drifted,
                        **common,
                    )
                )
        return reports

    def _anomaly(
        self,
        scope: str,
        reference: Sample,
        current: Sample,
        results: list[MetricDrift],
        psis: dict[str, float],
        signals: set[str],
    ) -> Anomaly:
        drifted = [result for result in results if result.drifted]
        score = max(psis[metric] for metric in signals)
        evidence = {
            "psi": {metric: round(value, 4) for metric, value in psis.items()},
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
            # The verdict's test (KS or Mann-Whitney, Fisher) and the part it compared.
            "pvalue": {result.metric: result.pvalue for result in results},
            "part": {result.metric: result.part for result in drifted},
            # In the metric's own units: what moved, from what to what.
            "shift": {
                result.metric: {
                    "statistic": result.shift.statistic,
                    "from": round(result.shift.reference, 4),
                    "to": round(result.shift.current, 4),
                    "large": result.shift.large,
                }
                for result in results
            },
            "window_events": current.count,
            "reference_events": reference.count,
            "window_signatures": int(current.signed.shape[0]),
            "reference_signatures": int(reference.signed.shape[0]),
            "window": [_ts(current.start), _ts(current.end)],
            "reference_window": [_ts(reference.start), _ts(reference.end)],
            "reference": self.config.reference,
        }
        return Anomaly(
            kind="drift",
            subject=f"scope:{scope}",
            score=round(score, 4),
            severity=_severity(score),
            signals=sorted(signals),
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
