"""Distributions over many draws (draws.py), as `meterline eval detections` prints them. Pure.

Recall is the share of campaigns whose key was blocked (the detector runs on `enforce`);
times, requests and dollars "to block" run from the first abusive request to the block
(requests and dollars: what the attacker was served until the gateway refused, in-flight
ones included), as p50 / p95 over the blocked campaigns. False-positive keys are the
normal keys of every draw that raised any anomaly (alerted) or were blocked;
legitimate changes (a move, a new region, a batch spike, a model upgrade) count apart.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from meterline.evaluate.draws import LlmjackingDraw

__all__ = ["LlmjackingSummary", "format_llmjacking", "percentile", "summarize_llmjacking"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): a value that occurred, never interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class LlmjackingSummary:
    draws: int
    seeds: list[int]
    recall: float
    recall_by_seed: dict[int, float]
    alert_recall: float
    time_to_block: tuple[float | None, float | None]  # p50, p95 (s)
    requests_to_block: tuple[float | None, float | None]
    usd_to_block: tuple[Decimal | None, Decimal | None]
    normal_keys: int
    fp_alerted: int
    fp_blocked: int
    legit: dict[str, tuple[int, int, int]]  # kind -> (changes, alerted, blocked)
    by_ramp: dict[str, tuple[int, float, float | None]]  # ramp -> (draws, recall, p95 time)
    missed: list[LlmjackingDraw]

    @property
    def fp_rate(self) -> float:
        return self.fp_alerted / self.normal_keys if self.normal_keys else 0.0

    @property
    def legit_blocked(self) -> int:
        return sum(blocked for _, _, blocked in self.legit.values())


def summarize_llmjacking(results: Sequence[LlmjackingDraw]) -> LlmjackingSummary:
    blocked = [r for r in results if r.blocked]
    seeds = sorted({r.seed for r in results})
    by_seed = {
        s: sum(r.blocked for r in results if r.seed == s)
        / max(1, sum(1 for r in results if r.seed == s))
        for s in seeds
    }
    times = [r.blocked_after_s for r in blocked if r.blocked_after_s is not None]
    counts = [float(r.requests_to_block) for r in blocked if r.requests_to_block is not None]
    dollars = [r.usd_to_block for r in blocked if r.usd_to_block is not None]
    legit: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in results:
        for change in r.legit:
            row = legit[change["kind"]]
            row[0] += 1
            row[1] += change["alerted"]
            row[2] += change["blocked"]
    ramps: dict[str, list[LlmjackingDraw]] = defaultdict(list)
    for r in results:
        ramps[r.params.ramp].append(r)
    by_ramp = {
        ramp: (
            len(rs),
            sum(r.blocked for r in rs) / len(rs),
            percentile([r.blocked_after_s for r in rs if r.blocked_after_s is not None], 95),
        )
        for ramp, rs in sorted(ramps.items())
    }
    return LlmjackingSummary(
        draws=len(results),
        seeds=seeds,
        recall=len(blocked) / len(results) if results else 0.0,
        recall_by_seed=by_seed,
        alert_recall=sum(r.alerted_after_s is not None for r in results) / max(1, len(results)),
        time_to_block=(percentile(times, 50), percentile(times, 95)),
        requests_to_block=(percentile(counts, 50), percentile(counts, 95)),
        usd_to_block=(_decimal_percentile(dollars, 50), _decimal_percentile(dollars, 95)),
        normal_keys=sum(r.normal_keys for r in results),
        fp_alerted=sum(len(r.false_positive_keys) for r in results),
        fp_blocked=sum(len(r.false_positive_blocks) for r in results),
        legit={kind: (row[0], row[1], row[2]) for kind, row in sorted(legit.items())},
        by_ramp=by_ramp,
        missed=[r for r in results if not r.blocked],
    )


def _decimal_percentile(values: Sequence[Decimal], q: float) -> Decimal | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _s(value: float | None, unit: str = "s", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _usd(value: Decimal | None) -> str:
    return "-" if value is None else f"${value.quantize(Decimal('0.0001'))}"


def format_llmjacking(s: LlmjackingSummary) -> str:
    seeds = ", ".join(f"{seed}: {recall:.2f}" for seed, recall in s.recall_by_seed.items())
    lines = [
        f"llmjacking: {s.draws} campaigns, seeds {', '.join(map(str, s.seeds))} "
        "(detector: production defaults, policy enforce)",
        f"  recall (blocked) {s.recall:.3f}  [by seed {seeds}];  alerted {s.alert_recall:.3f}",
        f"  time to block      p50 {_s(s.time_to_block[0])}  p95 {_s(s.time_to_block[1])}",
        f"  requests to block  p50 {_s(s.requests_to_block[0], '', 0)}  "
        f"p95 {_s(s.requests_to_block[1], '', 0)}",
        f"  dollars to block   p50 {_usd(s.usd_to_block[0])}  p95 {_usd(s.usd_to_block[1])}",
        f"  false-positive keys: {s.fp_alerted} of {s.normal_keys} normal keys alerted "
        f"({100 * s.fp_rate:.2f}%), {s.fp_blocked} blocked",
        f"  legitimate changes blocked: {s.legit_blocked} of "
        f"{sum(n for n, _, _ in s.legit.values())}  ("
        + ", ".join(f"{kind} {b}/{n} blocked, {a} alerted" for kind, (n, a, b) in s.legit.items())
        + ")",
        "  by ramp: "
        + "; ".join(
            f"{ramp} {n} draws, recall {recall:.2f}, time to block p95 {_s(p95)}"
            for ramp, (n, recall, p95) in s.by_ramp.items()
        ),
    ]
    for r in s.missed:
        p = r.params
        lines.append(
            f"  missed: seed {r.seed} draw {r.index}: {p.ramp} {p.peak_rate:.2f}/s, "
            f"{p.networks} networks, {'copied' if p.copy_user_agent else 'new'} user agent, "
            f"{p.models} models, probes {p.probe}, enumeration {p.enumerate}; "
            f"alerted {r.alerted_after_s is not None}, served {r.served} requests "
            f"{_usd(r.usd_served)}"
        )
    return "\n".join(lines)
