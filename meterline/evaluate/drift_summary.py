"""Drift figures over many draws (drift_draws.py), as `meterline eval detections` prints
them. Pure.

Recall is the share of real shifts reported within one window (delay at most `window_s`
plus the 5 s between two `close_due` calls, from the shift's start); "reported" counts
those reported at all before the draw ends (`windows_after` windows after the shift).
Delays are p50 / p95 over the reported shifts, in seconds and in windows of `window_s`.
False alarms are drift anomalies on stable scopes, or before a shift; sub-threshold
shifts are counted apart, neither misses nor false alarms.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from meterline.evaluate.drift_draws import DriftDraw
from meterline.evaluate.summary import percentile

__all__ = ["DriftSummary", "format_drift", "summarize_drift"]

_SHOWN = 15
_TRAFFIC = ((1.0, "< 1 req/s"), (10.0, "1-10 req/s"), (float("inf"), ">= 10 req/s"))


@dataclass(frozen=True)
class ShiftRow:
    shifts: int
    in_time: int
    reported: int
    delay: tuple[float | None, float | None]  # p50, p95 (s)


@dataclass
class DriftSummary:
    seeds: list[int]
    window_s: float
    in_time_s: float
    shifts: int
    recall: float  # within one window
    reported: float  # at all
    recall_by_seed: dict[int, float]
    delay: tuple[float | None, float | None, float | None]  # p50, p95, max (s)
    by_kind: dict[str, ShiftRow]
    by_traffic: dict[str, ShiftRow]
    stable: int
    stable_alerted: int
    false_alarm_metrics: Counter[str]
    alerted_before_shift: int
    sub_threshold: int
    sub_threshold_alerted: int
    missed: list[DriftDraw]


def _row(draws: Sequence[DriftDraw]) -> ShiftRow:
    delays = [d.delay_s for d in draws if d.delay_s is not None]
    return ShiftRow(
        len(draws),
        sum(d.in_time for d in draws),
        len(delays),
        (percentile(delays, 50), percentile(delays, 95)),
    )


def _traffic(rate: float) -> str:
    return next(name for ceiling, name in _TRAFFIC if rate < ceiling)


def summarize_drift(results: Sequence[DriftDraw]) -> DriftSummary:
    shifted = [d for d in results if d.category == "shift"]
    stable = [d for d in results if d.category == "stable"]
    sub = [d for d in results if d.category == "sub_threshold"]
    seeds = sorted({d.seed for d in results})
    kinds: dict[str, list[DriftDraw]] = defaultdict(list)
    traffic: dict[str, list[DriftDraw]] = {name: [] for _, name in _TRAFFIC}
    for draw in shifted:
        assert draw.shift is not None
        kinds[draw.shift.kind].append(draw)
        traffic[_traffic(draw.scope.rate)].append(draw)
    delays = [d.delay_s for d in shifted if d.delay_s is not None]
    overall = _row(shifted)
    first = results[0] if results else None
    return DriftSummary(
        seeds=seeds,
        window_s=first.window_s if first else 0.0,
        in_time_s=first.in_time_s if first else 0.0,
        shifts=len(shifted),
        recall=overall.in_time / max(1, overall.shifts),
        reported=overall.reported / max(1, overall.shifts),
        recall_by_seed={
            seed: _row([d for d in shifted if d.seed == seed]).in_time
            / max(1, sum(d.seed == seed for d in shifted))
            for seed in seeds
        },
        delay=(percentile(delays, 50), percentile(delays, 95), max(delays, default=None)),
        by_kind={kind: _row(rows) for kind, rows in kinds.items()},
        by_traffic={name: _row(rows) for name, rows in traffic.items() if rows},
        stable=len(stable),
        stable_alerted=sum(bool(d.alerts) for d in stable),
        false_alarm_metrics=Counter(
            metric
            for d in [*stable, *shifted]
            for _, metrics in d.false_alarms
            for metric in metrics
        ),
        alerted_before_shift=sum(bool(d.false_alarms) for d in shifted),
        sub_threshold=len(sub),
        sub_threshold_alerted=sum(bool(d.alerts) for d in sub),
        missed=[d for d in shifted if not d.in_time],
    )


def _s(value: float | None, window_s: float) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s ({value / window_s:.2f} windows)" if window_s else f"{value:.1f}s"


def format_drift(s: DriftSummary) -> str:
    seeds = ", ".join(f"{seed}: {recall:.2f}" for seed, recall in s.recall_by_seed.items())
    w = s.window_s
    lines = [
        f"drift: {s.shifts} shifted scopes, {s.stable} stable, {s.sub_threshold} sub-threshold, "
        f"seeds {', '.join(map(str, s.seeds))} (detector: production defaults, window {w:g}s)",
        f"  recall (reported within one window: <= {s.in_time_s:g}s from the shift's start) "
        f"{s.recall:.3f}  [by seed {seeds}];  reported at all {s.reported:.3f}",
        f"  delay p50 {_s(s.delay[0], w)}  p95 {_s(s.delay[1], w)}  max {_s(s.delay[2], w)}",
    ]
    for title, rows in (("by shift kind", s.by_kind), ("by traffic", s.by_traffic)):
        lines.append(f"  {title}:")
        for name, row in rows.items():
            lines.append(
                f"    {name:<16} {row.shifts:3d}: within one window {row.in_time:3d}, reported "
                f"{row.reported:3d};  delay p50 {_s(row.delay[0], w)}  p95 {_s(row.delay[1], w)}"
            )
    metrics = ", ".join(f"{m} {n}" for m, n in s.false_alarm_metrics.most_common()) or "none"
    lines += [
        f"  false alarms: stable scopes alerted {s.stable_alerted} of {s.stable}; shifted scopes "
        f"alerted before their shift {s.alerted_before_shift} of {s.shifts} (metrics: {metrics})",
        f"  sub-threshold shifts alerted: {s.sub_threshold_alerted} of {s.sub_threshold} "
        "(not counted as misses)",
    ]
    for d in s.missed[:_SHOWN]:
        assert d.shift is not None
        scope = d.scope
        verdict = f"reported after {_s(d.delay_s, w)}" if d.reported else "not reported"
        size = _size(d.shift.kind, d.shift.size)
        lines.append(
            f"  missed: seed {d.seed} draw {d.index}: {d.shift.kind} {size} "
            f"at {scope.rate:.2f} req/s ({d.requests} requests; prompts median "
            f"{scope.prompt_median:.0f} chars, answers {scope.answer_median:.0f} tokens, "
            f"errors {100 * scope.error_rate:.1f}%, refusals {100 * scope.refusal_rate:.1f}%, "
            f"{_content(d)}): {verdict}"
        )
    if len(s.missed) > _SHOWN:
        lines.append(f"  ... and {len(s.missed) - _SHOWN} more missed")
    return "\n".join(lines)


def _size(kind: str, size: float) -> str:
    if kind.endswith("_rate_up"):
        return f"+{100 * size:.1f} points"
    if kind == "content_change":
        return f"{100 * size:.0f}% of prompts"
    return f"x{size:.2f}"


def _content(draw: DriftDraw) -> str:
    scope = draw.scope
    if draw.shift is not None and draw.shift.kind == "content_change":
        return f"{scope.content} prompts -> {scope.new_content}"
    return f"{scope.content} prompts"
