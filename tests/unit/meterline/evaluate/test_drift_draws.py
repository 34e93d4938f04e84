"""In-process drift draws: a scope's traffic with and without a shift, fed in event-time
order with the agent's close_due timer, and the figures over draws."""

from __future__ import annotations

import random
from dataclasses import replace
from statistics import median

from meterline.evaluate.draws import T0
from meterline.evaluate.drift_draws import DriftDraw, DriftDrawConfig, drift_draw, watch_scope
from meterline.evaluate.drift_summary import format_drift, summarize_drift
from meterline.evaluate.drift_traffic import SHIFT_KINDS, Shift, draw_scope, scope_requests

CONFIG = DriftDrawConfig()


def _scope(seed: str, shift: Shift | None, rate: float = 8.0, duration: float = 420.0) -> DriftDraw:
    rng = random.Random(seed)
    scope = replace(draw_scope(rng, f"app-{seed}"), rate=rate)
    draw = DriftDraw(0, 0, "t", scope, shift, duration, 60.0, CONFIG.in_time_s)
    return watch_scope(draw, CONFIG, rng)


def test_a_draw_is_reproducible() -> None:
    first, again = drift_draw(3, 2, "shift", CONFIG), drift_draw(3, 2, "shift", CONFIG)
    assert first == again and first.requests > 0
    assert first.shift is not None and first.shift.kind == SHIFT_KINDS[2]
    assert drift_draw(4, 2, "shift", CONFIG).scope != first.scope


def test_a_shift_changes_the_traffic_from_its_start() -> None:
    rng = random.Random("traffic")
    scope = replace(draw_scope(rng, "app-t"), rate=5.0)
    events = list(scope_requests(rng, scope, 0.0, 400.0, Shift("latency_up", 3.0, 200.0)))

    def latency(low: float, high: float) -> float:
        return median(
            e.latency_ms for e in events if low <= (e.ts_start - T0).total_seconds() < high
        )

    assert latency(200, 400) > 2.5 * latency(0, 200)
    assert 0.7 < latency(100, 200) / latency(0, 100) < 1.4


def test_a_real_shift_is_reported_naming_its_metric() -> None:
    draw = _scope("shifted", Shift("latency_up", 3.0, 240.0))
    assert draw.reported and not draw.false_alarms
    assert draw.delay_s is not None and draw.delay_s <= 2 * CONFIG.in_time_s
    at = draw.shift.at_s + draw.delay_s
    assert any("latency_ms" in metrics for when, metrics in draw.alerts if when == at)


def test_stable_traffic_raises_no_drift() -> None:
    draw = _scope("stable", None)
    assert draw.requests > 2000 and draw.alerts == [] and draw.delay_s is None


def test_the_summary_reads_the_draws() -> None:
    results = [
        _scope("a", Shift("error_rate_up", 0.3, 240.0), rate=6.0),
        _scope("b", Shift("latency_up", 3.0, 240.0), rate=6.0),
        _scope("c", None, rate=6.0),
    ]
    results[2].category = "stable"
    for draw in results[:2]:
        draw.category = "shift"
    summary = summarize_drift(results)
    assert summary.shifts == 2 and summary.stable == 1
    assert summary.recall == sum(d.in_time for d in results[:2]) / 2
    assert summary.reported == sum(d.reported for d in results[:2]) / 2
    assert summary.stable_alerted == int(bool(results[2].alerts))
    text = format_drift(summary)
    assert f"reported at all {summary.reported:.3f}" in text
    assert f"stable scopes alerted {summary.stable_alerted} of 1" in text
    assert "latency_up" in text and "error_rate_up" in text
