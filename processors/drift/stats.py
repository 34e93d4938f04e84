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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import fisher_exact, ks_2samp, mannwhitneyu

__all__ = [
    "DEFAULT_EPS",
    "KsResult",
    "ks",
    "mann_whitney_pvalue",
    "psi",
    "psi_of_fractions",
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
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.size == 0 or cur.size == 0:
        raise ValueError("psi needs two non-empty samples")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    if edges[0] == ref.min():
        edges = np.concatenate(([np.nextafter(edges[0], -np.inf)], edges))
    slots = edges.size + 1
    return psi_of_fractions(
        np.bincount(np.searchsorted(edges, ref, side="left"), minlength=slots),
        np.bincount(np.searchsorted(edges, cur, side="left"), minlength=slots),
        eps,
    )


def ks(reference: Sample, current: Sample) -> KsResult:
    result = ks_2samp(np.asarray(reference), np.asarray(current))
    return KsResult(statistic=float(result.statistic), pvalue=float(result.pvalue))


def mann_whitney_pvalue(
    reference: Sample, current: Sample, alternative: str = "two-sided"
) -> float:
    """Mann-Whitney U: the p-value of one sample's values ranking this far above (or below)
    the other's if both share one distribution. Normal approximation with tie correction:
    exact enough from ~10 values a side, and O(n log n)."""
    result = mannwhitneyu(
        np.asarray(reference), np.asarray(current), alternative=alternative, method="asymptotic"
    )
    return float(result.pvalue)


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
