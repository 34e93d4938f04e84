"""Distribution-shift statistics: PSI and the two-sample Kolmogorov-Smirnov test. Pure.

PSI (population stability index) = sum over bins of (cur - ref) * ln(cur / ref), bins
being quantiles of the reference. Rules of thumb: < 0.1 stable, 0.1-0.25 moderate,
>= 0.25 a significant shift. Empty bins are floored at `eps` (then renormalized) so one
empty bin cannot make PSI infinite.

PSI is biased upwards on small samples (about (bins - 1) * (1/n_ref + 1/n_cur) for two
samples of one distribution), and on a two-bin rate it hardly moves for a rate that
triples (1.4% -> 8% is PSI 0.10). So drift reports PSI but judges by tests: KS (any
change of shape) and Mann-Whitney U (a location shift, with more power on few samples)
for a continuous metric, Fisher's exact test for a rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import kolmogorov
from scipy.stats import fisher_exact

__all__ = [
    "DEFAULT_EPS",
    "KsResult",
    "MannWhitney",
    "ks",
    "mann_whitney",
    "psi",
    "psi_of_fractions",
    "quantiles_of_sorted",
    "rates_pvalue",
]

DEFAULT_EPS = 1e-4

Sample = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class KsResult:
    statistic: float  # largest gap between the two empirical CDFs, 0..1
    pvalue: float  # chance of a gap this large if both samples share one distribution


def psi_of_fractions(reference: Sample, current: Sample, eps: float = DEFAULT_EPS) -> float:
    """PSI of two distributions over the same bins (fractions or counts per bin)."""
    ref = _smoothed(np.asarray(reference, dtype=np.float64), eps)
    cur = _smoothed(np.asarray(current, dtype=np.float64), eps)
    if ref.shape != cur.shape:
        raise ValueError(f"bins differ: {ref.shape} vs {cur.shape}")
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi(reference: Sample, current: Sample, bins: int = 10, eps: float = DEFAULT_EPS) -> float:
    """PSI of two samples over quantile bins of the reference.

    Bins are right-closed, (q_i-1, q_i], so repeated values (zero tokens) share one bin.
    When the reference piles up at its minimum, values below it get a bin of their own:
    otherwise a constant reference could not tell "lower" from "the same".
    """
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    cur = np.asarray(current, dtype=np.float64)
    if ref.size == 0 or cur.size == 0:
        raise ValueError("psi needs two non-empty samples")
    edges = np.unique(quantiles_of_sorted(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    if edges[0] == ref[0]:
        edges = np.concatenate(([np.nextafter(edges[0], -np.inf)], edges))
    slots = edges.size + 1
    return psi_of_fractions(
        np.bincount(np.searchsorted(edges, ref, side="left"), minlength=slots),
        np.bincount(np.searchsorted(edges, cur, side="left"), minlength=slots),
        eps,
    )


def quantiles_of_sorted(values: np.ndarray, q: np.ndarray | float) -> np.ndarray:
    """np.quantile's default (linear) of an already sorted array, without its overhead
    (drift takes several quantiles of the same samples at every check)."""
    position = np.asarray(q, dtype=np.float64) * (values.size - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, values.size - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def ks(reference: Sample, current: Sample) -> KsResult:
    """Two-sample KS: the largest gap between the empirical CDFs, and its p-value from the
    Kolmogorov distribution with Stephens' small-sample correction: within a factor 1.5 of
    scipy's exact p-value from 5 values a side, more often above it than below. Computed
    here because scipy's checks and exact method cost ~1 ms a call, at every check."""
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    cur = np.sort(np.asarray(current, dtype=np.float64))
    both = np.concatenate((ref, cur))
    gap = np.abs(
        np.searchsorted(ref, both, side="right") / ref.size
        - np.searchsorted(cur, both, side="right") / cur.size
    )
    statistic = float(gap.max())
    root = math.sqrt(ref.size * cur.size / (ref.size + cur.size))
    pvalue = float(kolmogorov((root + 0.12 + 0.11 / root) * statistic))
    return KsResult(statistic=statistic, pvalue=min(1.0, pvalue))


@dataclass(frozen=True)
class MannWhitney:
    pvalue: float
    superiority: float  # P(a current value > a reference value), ties counting half


def mann_whitney(reference: Sample, current: Sample, alternative: str = "two-sided") -> MannWhitney:
    """Mann-Whitney U: the p-value of values ranking this far apart if both samples share
    one distribution; `alternative` as scipy.stats.mannwhitneyu(reference, current) reads
    it ("less": the reference ranks lower, i.e. current values are larger). The normal
    approximation with tie and continuity corrections, as scipy's "asymptotic" method
    (the same p-values, without its ~2 ms of checks): exact enough from ~10 values a side."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    n1, n2 = ref.size, cur.size
    both = np.concatenate((ref, cur))
    order = np.argsort(both, kind="mergesort")
    ordered = both[order]
    starts = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(starts) - 1
    ties = np.bincount(group)
    mean_rank = np.cumsum(ties) - (ties - 1) / 2  # 1-based ranks, ties averaged
    ranks = np.empty(both.size)
    ranks[order] = mean_rank[group]
    u_ref = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - float((ties**3 - ties).sum()) / (n * (n - 1)))
    superiority = 1 - u_ref / (n1 * n2)
    if variance <= 0:
        return MannWhitney(1.0, 0.5)  # every value the same: nothing ranks above anything
    if alternative == "greater":
        u = u_ref
    elif alternative == "less":
        u = n1 * n2 - u_ref
    else:
        u = max(u_ref, n1 * n2 - u_ref)
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    pvalue = 0.5 * math.erfc(z / math.sqrt(2))
    return MannWhitney(min(1.0, 2 * pvalue if alternative == "two-sided" else pvalue), superiority)


def rates_pvalue(reference: tuple[int, int], current: tuple[int, int]) -> float:
    """Fisher's exact test on (hits, misses) of two windows: the p-value of rates this far
    apart if both windows share one rate. Exact, so it holds for rare events (errors)."""
    return float(fisher_exact([list(reference), list(current)]).pvalue)


def _smoothed(counts: np.ndarray, eps: float) -> np.ndarray:
    total = counts.sum()
    if total <= 0:
        raise ValueError("a distribution needs some mass")
    fractions = np.maximum(counts / total, eps)
    return fractions / fractions.sum()
