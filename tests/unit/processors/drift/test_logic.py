"""DriftDetector: windows per scope, references, verdicts and one alert per drifted window.

`traffic()` is the synthetic generator shared with the integration test: a seed, and
optionally a shift in prompt length, content (code instead of prose), errors or refusals.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from meterline.settings import DriftSettings, Settings
from processors.drift.logic import (
    CONTINUOUS_METRICS,
    RATE_METRICS,
    SIGNATURE_METRIC,
    DriftDetector,
    InvalidSignature,
    WindowedMetrics,
    compare_windows,
    psi_of,
    request_from_payload,
    scope_of,
)
from schemas.budget_spend import spend_partition
from schemas.events.v1 import Anomaly, DriftReport, RequestEvent, format_ts
from schemas.signature import prompt_signature
from schemas.topics import partition_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WORDS = (
    "please",
    "explain",
    "how",
    "my",
    "order",
    "refund",
    "shipping",
    "account",
    "works",
    "and",
    "what",
    "the",
    "price",
    "of",
    "delivery",
    "is",
    "for",
    "a",
    "customer",
    "who",
    "asks",
    "about",
    "the",
    "invoice",
    "today",
)
CODE_CHARS = "{}()[];=+-*/<>_0123456789abcdefxyz \n"


@dataclass(frozen=True)
class Shift:
    prompt_scale: float = 1.0
    code: bool = False  # prompts become code: the content signature moves
    error_p: float = 0.02
    refusal_p: float = 0.02


NO_SHIFT = Shift()


def traffic(
    seed: int,
    count: int,
    *,
    app: str | None = "shop",
    model: str = "gpt-4o-mini",
    shift: Shift = NO_SHIFT,
    start: datetime = T0,
    step: timedelta = timedelta(seconds=1),
) -> list[RequestEvent]:
    rng = random.Random(seed)
    events = []
    for index in range(count):
        chars = max(3, int(rng.lognormvariate(6.0, 0.4) * shift.prompt_scale))
        if shift.code:
            text = "".join(rng.choice(CODE_CHARS) for _ in range(chars))
        else:
            text = " ".join(rng.choice(WORDS) for _ in range(chars // 6 + 1))[:chars]
        response_chars = int(rng.lognormvariate(7.0, 0.5))
        output_tokens = response_chars // 4
        error = rng.random() < shift.error_p
        refused = rng.random() < shift.refusal_p
        at = start + step * index
        events.append(
            RequestEvent(
                request_id=f"req-{seed}-{index}",
                ts_start=at,
                ts_end=at,
                latency_ms=200 + 8 * output_tokens + rng.gauss(0, 30),
                key_id=f"key-{index % 4}",
                org="acme",
                app=app,
                provider="openai",
                model_used=model,
                endpoint="/v1/chat/completions",
                status_code=500 if error else 200,
                input_tokens=chars // 4,
                output_tokens=output_tokens,
                prompt_chars=chars,
                response_chars=response_chars,
                prompt_signature=prompt_signature(text),
                finish_reason="content_filter" if refused else "stop",
            )
        )
    return events


def config(**overrides: object) -> DriftSettings:
    values: dict[str, object] = {"window_events": 200, "min_events": 100, "window_s": 0}
    values.update(overrides)
    return DriftSettings.model_validate(values)


def run(detector: DriftDetector, events: list[RequestEvent]) -> list[DriftReport | Anomaly]:
    return [result for event in events for result in detector.observe(event)]


def split(results: list[DriftReport | Anomaly]) -> tuple[list[DriftReport], list[Anomaly]]:
    reports = [r for r in results if isinstance(r, DriftReport)]
    return reports, [r for r in results if isinstance(r, Anomaly)]


def drifted_metrics(reports: list[DriftReport]) -> set[str]:
    return {report.metric for report in reports if report.drifted}


# One report per metric and statistic: PSI for all, KS for continuous metrics too.
REPORTS_PER_WINDOW = 2 * len(CONTINUOUS_METRICS) + len(RATE_METRICS) + 1


def test_first_window_is_the_baseline_and_stable_traffic_never_alerts() -> None:
    detector = DriftDetector(config())
    windows = [traffic(seed, 200, start=T0 + timedelta(hours=seed)) for seed in range(1, 7)]

    per_window = [run(detector, window) for window in windows]

    assert per_window[0] == []  # nothing to compare the baseline with
    for results in per_window[1:]:
        reports, anomalies = split(results)
        assert len(reports) == REPORTS_PER_WINDOW and anomalies == []
        assert drifted_metrics(reports) == set()


def test_psi_noise_on_small_windows_needs_the_tests_to_confirm() -> None:
    detector = DriftDetector(config(window_events=30, min_events=30))
    windows = [traffic(seed, 30, start=T0 + timedelta(hours=seed)) for seed in range(1, 9)]

    reports, anomalies = split([r for window in windows for r in run(detector, window)])

    # 30 vs 30 requests of one distribution: PSI crosses 0.25 by chance alone...
    noisy = [r for r in reports if r.statistic == "psi" and r.value >= 0.25]
    assert noisy
    # ...but the KS / Fisher tests do not confirm it: no verdict, no alert.
    assert not any(r.drifted for r in reports) and anomalies == []


def test_shifted_prompts_alert_once_within_one_window() -> None:
    detector = DriftDetector(config())
    run(detector, traffic(1, 200))
    shifted = traffic(2, 200, shift=Shift(prompt_scale=3.0, code=True), start=T0 + timedelta(1))

    per_event = [detector.observe(event) for event in shifted]

    assert all(results == [] for results in per_event[:-1])  # only the closing event reports
    reports, anomalies = split(per_event[-1])
    assert len(reports) == REPORTS_PER_WINDOW
    assert {r.scope for r in reports} == {"app:shop/model:gpt-4o-mini"}
    assert drifted_metrics(reports) == {"prompt_chars", "input_tokens", SIGNATURE_METRIC}
    psi_of = {r.metric: r for r in reports if r.statistic == "psi"}
    assert psi_of["prompt_chars"].value > 0.25 and psi_of["prompt_chars"].threshold == 0.25
    assert psi_of["latency_ms"].value < 0.25 and not psi_of["latency_ms"].drifted
    ks_of = {r.metric: r for r in reports if r.statistic == "ks"}
    assert ks_of["prompt_chars"].value < 0.01 and ks_of["prompt_chars"].drifted
    assert set(ks_of) == set(CONTINUOUS_METRICS)

    [anomaly] = anomalies
    assert anomaly.kind == "drift" and anomaly.subject == "scope:app:shop/model:gpt-4o-mini"
    assert anomaly.signals == ["input_tokens", "prompt_chars", SIGNATURE_METRIC]
    assert anomaly.score == round(max(psi_of[m].value for m in anomaly.signals), 4)
    assert anomaly.severity == "high"  # x3 longer prompts: PSI well above 1
    assert anomaly.recommended_action == "alert"
    evidence = anomaly.evidence
    assert evidence["window_events"] == evidence["reference_events"] == 200
    assert evidence["window_signatures"] == 200
    assert set(evidence["psi"]) == set(psi_of) and set(evidence["ks"]) == set(ks_of)
    assert evidence["ks"]["prompt_chars"]["pvalue"] < 0.01
    assert evidence["pvalue"]["prompt_chars"] < 1e-5
    assert evidence["part"]["prompt_chars"] == "window"
    # Content in its own units: the share of prompts unlike the reference's grew.
    content = evidence["shift"][SIGNATURE_METRIC]
    assert content["statistic"] == "unlike_share" and content["to"] > 0.8  # all of them
    assert evidence["window"] == ["2026-03-03T09:00:00.000Z", "2026-03-03T09:03:19.000Z"]
    assert evidence["reference_window"][0] == "2026-03-02T09:00:00.000Z"
    orjson.loads(anomaly.to_json())  # the evidence serializes


def test_trailing_reference_alerts_once_fixed_reference_keeps_alerting() -> None:
    shifted = Shift(prompt_scale=3.0)
    windows = [
        traffic(1, 200),
        traffic(2, 200, shift=shifted, start=T0 + timedelta(1)),
        traffic(3, 200, shift=shifted, start=T0 + timedelta(2)),
    ]
    trailing = DriftDetector(config(reference="trailing"))
    fixed = DriftDetector(config(reference="fixed"))

    trailing_alerts = [split(run(trailing, window))[1] for window in windows]
    fixed_results = [split(run(fixed, window)) for window in windows]

    assert [len(alerts) for alerts in trailing_alerts] == [0, 1, 0]  # the new normal
    assert [len(alerts) for _, alerts in fixed_results] == [0, 1, 1]
    third_reports = fixed_results[2][0]
    assert {r.reference_start for r in third_reports} == {windows[0][0].ts_end}
    assert {r.window_start for r in third_reports} == {windows[2][0].ts_end}


@pytest.mark.parametrize(
    ("shift", "metric"),
    [(Shift(error_p=0.3), "error_rate"), (Shift(refusal_p=0.25), "refusal_rate")],
)
def test_rates_drift_on_their_own(shift: Shift, metric: str) -> None:
    detector = DriftDetector(config())
    run(detector, traffic(1, 200))

    reports, anomalies = split(run(detector, traffic(2, 200, shift=shift, start=T0 + timedelta(1))))

    assert drifted_metrics(reports) == {metric}
    assert [anomaly.signals for anomaly in anomalies] == [[metric]]
    [rate] = [r for r in reports if r.metric == metric]
    assert rate.statistic == "psi" and rate.value >= 0.25


def test_refusal_reasons() -> None:
    detector = DriftDetector(config())
    run(detector, traffic(1, 200, shift=Shift(refusal_p=0.0)))
    refusals = [
        event.model_copy(update={"finish_reason": "refusal" if i % 3 else "content_filter"})
        for i, event in enumerate(traffic(2, 200, start=T0 + timedelta(1)))
    ]

    _, anomalies = split(run(detector, refusals))

    assert [anomaly.signals for anomaly in anomalies] == [["refusal_rate"]]


def test_time_windows_wait_for_min_events() -> None:
    detector = DriftDetector(config(window_events=1000, window_s=60, min_events=50))
    busy = traffic(1, 300, step=timedelta(seconds=1))
    quiet = traffic(2, 300, step=timedelta(seconds=10), start=T0 + timedelta(1))

    busy_closes = [i for i, event in enumerate(busy) if detector.observe(event)]
    detector = DriftDetector(config(window_events=1000, window_s=60, min_events=50))
    quiet_closes = [i for i, event in enumerate(quiet) if detector.observe(event)]

    # 1 event/s: a window every 60 events (the first is the baseline, reported nothing).
    assert busy_closes == [120, 180, 240]
    # 1 event/10 s: 60 s pass after 6 events, but a window waits for 50 events.
    assert quiet_closes == [100, 150, 200, 250]


def test_signatures_are_compared_only_with_enough_of_them() -> None:
    detector = DriftDetector(config())
    unsigned = [
        event.model_copy(update={"prompt_signature": None}) if i % 2 else event
        for i, event in enumerate(traffic(1, 400))
    ]

    reports, _ = split(run(detector, unsigned))  # 100 signed per window: just enough
    assert SIGNATURE_METRIC in {r.metric for r in reports}
    detector = DriftDetector(config(min_events=101))
    reports, _ = split(run(detector, unsigned))
    assert reports and SIGNATURE_METRIC not in {r.metric for r in reports}


def test_scopes_are_separate_and_bounded() -> None:
    detector = DriftDetector(config(max_scopes=2))
    baseline = traffic(1, 200, app=None) + traffic(2, 200, app="bot")
    later = traffic(3, 200, app=None, start=T0 + timedelta(1))
    later += traffic(4, 200, app="bot", shift=Shift(prompt_scale=3), start=T0 + timedelta(1))
    ignored = traffic(5, 50, app="third")

    reports, anomalies = split(run(detector, baseline + ignored + later))

    assert {r.scope for r in reports} == {"app:-/model:gpt-4o-mini", "app:bot/model:gpt-4o-mini"}
    assert {r.scope for r in reports if r.drifted} == {"app:bot/model:gpt-4o-mini"}
    assert [a.subject for a in anomalies] == ["scope:app:bot/model:gpt-4o-mini"]
    assert detector.ignored_events == 50


def test_a_scope_given_to_another_worker_is_forgotten_and_starts_over() -> None:
    detector = DriftDetector(config())
    shop, bot = traffic(1, 200, app="shop"), traffic(2, 200, app="bot")
    run(detector, shop + bot)  # both scopes have their baseline window
    assert detector.forget(lambda scope: scope.startswith("app:bot/")) == 1
    # bot's next window is a new baseline (no report); shop's is compared with its own.
    later = traffic(3, 200, app="shop", start=T0 + timedelta(1))
    later += traffic(4, 200, app="bot", start=T0 + timedelta(1))
    reports, _ = split(run(detector, later))
    assert {r.scope for r in reports} == {"app:shop/model:gpt-4o-mini"}


def test_every_record_of_a_scope_has_one_partition() -> None:
    scopes = [f"app:a{i}/model:m" for i in range(200)]
    assert {partition_for(scope, 6) for scope in scopes} == set(range(6))  # spread
    assert all(partition_for(scope, 6) == partition_for(scope, 6) for scope in scopes)
    assert {partition_for(scope, 1) for scope in scopes} == {0}
    assert partition_for("org:acme", 6) == spend_partition("org:acme", 6)  # one rule


def test_scope_prefers_the_model_used() -> None:
    [event] = traffic(1, 1, app="shop")
    assert scope_of(event) == "app:shop/model:gpt-4o-mini"
    requested = event.model_copy(update={"model_used": None, "model_requested": "gpt-4o"})
    assert scope_of(requested) == "app:shop/model:gpt-4o"
    nothing = requested.model_copy(update={"model_requested": None, "app": None})
    assert scope_of(nothing) == "app:-/model:-"


def test_payloads() -> None:
    [event] = traffic(1, 1)
    assert request_from_payload(event.to_json()) == event
    # Not a RequestEvent at all: the cost agent dead-letters those, drift skips them.
    assert request_from_payload(b"\xff not json") is None
    assert request_from_payload(b'{"request_id": "x"}') is None
    assert request_from_payload(None) is None
    bad = orjson.loads(event.to_json()) | {"prompt_signature": "abc"}
    with pytest.raises(InvalidSignature, match="prompt_signature: expected 32 hex digits"):
        request_from_payload(orjson.dumps(bad))


def test_config_from_settings_and_validation() -> None:
    settings = Settings(processors={"drift": {"window_events": 300, "min_events": 30}})
    loaded = settings.processors.drift
    assert (loaded.window_events, loaded.min_events, loaded.reference) == (300, 30, "trailing")
    assert loaded.pvalue == 2e-6 and loaded.min_rate_shift == 0.02
    with pytest.raises(ValueError, match="min_events"):
        DriftSettings(window_events=10, min_events=20)
    with pytest.raises(ValueError, match="reference"):
        DriftSettings(reference="sliding")  # type: ignore[arg-type]


def _latency(events: list[RequestEvent], median_ms: float, seed: int) -> list[RequestEvent]:
    # A tight latency distribution (a cache or a fast local model) around `median_ms`.
    rng = random.Random(seed)
    return [
        e.model_copy(update={"latency_ms": median_ms * rng.lognormvariate(0, 0.05)}) for e in events
    ]


def test_a_significant_but_small_shift_is_not_drift() -> None:
    """Issue 14: stable traffic whose median latency went from 4.4 to 4.9 ms alerted (PSI
    and KS see a real move; in milliseconds it is nothing)."""
    detector = DriftDetector(config())
    before = _latency(traffic(1, 200), 4.4, 1)
    after = _latency(traffic(2, 200, start=T0 + timedelta(hours=1)), 4.9, 2)
    reports, alerts = split(run(detector, before + after))
    latency = {r.statistic: r for r in reports if r.metric == "latency_ms"}
    assert latency["psi"].value >= 0.25 and latency["ks"].value < 0.01  # significant...
    assert not latency["psi"].drifted and not alerts  # ...but below the effect floor
    # Twenty times slower is drift, with the shift in milliseconds in the evidence.
    slower = _latency(traffic(3, 200, start=T0 + timedelta(hours=4)), 88.0, 3)
    later = _latency(traffic(4, 200, start=T0 + timedelta(hours=3)), 4.4, 4)
    detector = DriftDetector(config(reference="fixed"))
    _, alerts = split(run(detector, later + slower))
    [alert] = alerts
    shift = alert.evidence["shift"]["latency_ms"]
    assert alert.signals == ["latency_ms"] and shift["large"]
    assert 4.0 < shift["from"] < 5.0 and shift["to"] > 80  # median or p90, in ms


def test_a_quiet_scope_is_judged_while_its_window_fills() -> None:
    """An open window is judged every window_s / 4 once it holds half of min_events, so a
    shift is reported before the window's time is up; a drifted window closes at once."""
    detector = DriftDetector(config(window_events=500, window_s=60, min_events=20))
    slow = timedelta(seconds=2)
    baseline = traffic(5, 30, step=slow)  # 60 s: closes as the baseline at the 31st event
    shifted = traffic(6, 12, shift=Shift(prompt_scale=4), start=T0 + timedelta(60))
    assert not run(detector, baseline + shifted)  # 11 s: not yet a quarter window
    # The scope goes quiet: the agent's timer judges it a quarter window after it opened.
    assert not detector.close_due(shifted[0].ts_end + timedelta(seconds=14))
    [*reports, alert] = detector.close_due(shifted[0].ts_end + timedelta(seconds=15))
    assert isinstance(alert, Anomaly) and alert.signals == ["input_tokens", "prompt_chars"]
    assert alert.evidence["window_events"] == 12 and alert.evidence["reference_events"] == 30
    assert {r.window_end for r in reports} == {shifted[-1].ts_end}  # the window was closed


def test_stable_windows_pool_into_the_reference() -> None:
    detector = DriftDetector(config(window_events=100, min_events=50, reference_windows=3))
    windows = [traffic(seed, 100, start=T0 + timedelta(hours=seed)) for seed in range(1, 7)]
    reports, anomalies = split([r for window in windows for r in run(detector, window)])
    assert anomalies == []
    # The newest stable windows, at most 3: the last window is judged against the 3 before.
    last = [r for r in reports if r.window_start == windows[5][0].ts_end]
    assert {r.reference_start for r in last} == {windows[2][0].ts_end}
    assert {r.reference_end for r in last} == {windows[4][-1].ts_end}
    # Fewer when the newer ones hold reference_events already (memory is bounded).
    detector = DriftDetector(config(window_events=100, min_events=50, reference_events=150))
    reports, _ = split([r for window in windows for r in run(detector, window)])
    last = [r for r in reports if r.window_start == windows[5][0].ts_end]
    assert {r.reference_start for r in last} == {windows[3][0].ts_end}


def test_a_metric_that_moves_after_the_first_is_still_named_once() -> None:
    """After an alert the old reference judges one more window: errors that climb a
    window after the prompts changed are named then; the prompts are not named again."""
    detector = DriftDetector(config())
    longer, and_errors = Shift(prompt_scale=3.0), Shift(prompt_scale=3.0, error_p=0.3)
    windows = [
        traffic(1, 200),
        traffic(2, 200, shift=longer, start=T0 + timedelta(1)),
        traffic(3, 200, shift=and_errors, start=T0 + timedelta(2)),
        traffic(4, 200, shift=and_errors, start=T0 + timedelta(3)),
    ]
    alerts = [split(run(detector, window))[1] for window in windows]
    assert [[a.signals for a in window] for window in alerts] == [
        [],
        [["input_tokens", "prompt_chars"]],
        [["error_rate"]],
        [],  # the window after the alert became the new normal
    ]


def test_a_window_that_moved_but_is_not_yet_significant_is_judged_again() -> None:
    """Errors 3% -> 15% over 100 requests: moved by the floor, p ~ 1e-4, not yet drift.
    The window is held out of the reference and judged again with the next ones, until
    their pooled requests are significant. Absorbing it would raise the reference bit by
    bit, and the shift would never be reported."""
    detector = DriftDetector(config(window_events=100, min_events=100))
    raised = Shift(error_p=0.15)
    windows = [traffic(seed, 100, start=T0 + timedelta(hours=seed)) for seed in (1, 2, 3)]
    windows += [traffic(seed, 100, shift=raised, start=T0 + timedelta(seed)) for seed in (4, 5, 6)]
    per_window = [split(run(detector, window)) for window in windows]
    assert [len(alerts) for _, alerts in per_window] == [0, 0, 0, 0, 0, 1]
    [alert] = per_window[5][1]
    assert alert.signals == ["error_rate"] and alert.evidence["window_events"] == 300
    assert alert.evidence["reference_events"] == 300  # the three windows before the rise
    assert alert.evidence["window"][0] == format_ts(windows[3][0].ts_end)


def test_a_rate_is_judged_by_its_test_and_its_points_not_psi() -> None:
    """Refusals 1.4% -> 8%: PSI ~0.1 on the two-bin distribution, far below 0.25, but
    Fisher's p is tiny and 6.6 points is above the 2-point floor: drift."""
    reference, current = WindowedMetrics(1000), WindowedMetrics(500)
    for window, share in ((reference, 0.014), (current, 0.08)):
        size = 1000 if window is reference else 500
        events = traffic(7, size, shift=Shift(refusal_p=0.0))
        refused = round(share * size)
        for index, event in enumerate(events):
            reason = "content_filter" if index < refused else "stop"
            window.add(event.model_copy(update={"finish_reason": reason}))
    ref, cur = reference.sample(), current.sample()
    [refusals] = [r for r in compare_windows(ref, cur, config()) if r.metric == "refusal_rate"]
    assert psi_of(ref, cur, "refusal_rate", config()) < 0.15
    assert refusals.drifted and refusals.pvalue < 1e-6
    assert refusals.shift.reference == 0.014 and refusals.shift.current == 0.08
