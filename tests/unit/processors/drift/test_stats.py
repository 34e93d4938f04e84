"""PSI, KS and the prompt signature: known values, no Kafka."""

from __future__ import annotations

import math

import numpy as np
import pytest

from processors.drift.stats import (
    MannWhitney,
    ks,
    mann_whitney,
    psi,
    psi_of_fractions,
    quantiles_of_sorted,
)
from schemas.signature import prompt_signature, signature_mass


def test_psi_of_known_fractions() -> None:
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5)
    expected = 0.4 * math.log(1.8) + 0.4 * math.log(5)
    assert psi_of_fractions([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected, rel=1e-6)
    assert psi_of_fractions([5, 5], [9, 1]) == pytest.approx(expected, rel=1e-6)  # counts too
    assert psi_of_fractions([1, 2, 3], [1, 2, 3]) == 0.0


def test_psi_of_an_empty_bin_is_finite_thanks_to_eps() -> None:
    value = psi_of_fractions([1.0, 0.0], [0.5, 0.5])
    assert 1.0 < value < 10.0
    assert psi_of_fractions([1.0, 0.0], [0.5, 0.5], eps=1e-2) < value


def test_psi_of_one_distribution_is_about_zero() -> None:
    rng = np.random.default_rng(7)
    reference, current = rng.lognormal(6, 0.5, 5000), rng.lognormal(6, 0.5, 5000)
    assert psi(reference, reference) == 0.0
    assert psi(reference, current) < 0.01


def test_psi_of_a_shifted_distribution_is_large() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(0, 1, 2000)
    assert psi(reference, rng.normal(1, 1, 2000)) > 0.25  # one standard deviation
    assert psi(reference, rng.normal(0.1, 1, 2000)) < 0.1  # a tenth of one: stable


def test_psi_with_ties_and_constants() -> None:
    zeros_then_some = [0] * 80 + list(range(1, 21))
    assert psi(zeros_then_some, zeros_then_some) == 0.0
    assert psi([5.0] * 100, [5.0] * 100) == 0.0
    assert psi([5.0] * 100, [6.0] * 100) > 5.0  # everything moved to the other side
    with pytest.raises(ValueError):
        psi([], [1.0])


def test_ks_known_values() -> None:
    apart = ks([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert apart.statistic == 1.0 and apart.pvalue < 0.01
    same = ks([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert same.statistic == 0.0 and same.pvalue == 1.0
    rng = np.random.default_rng(3)
    assert ks(rng.normal(0, 1, 500), rng.normal(0, 1, 500)).pvalue > 0.01
    assert ks(rng.normal(0, 1, 500), rng.normal(0.5, 1, 500)).pvalue < 1e-6


def test_signature_is_pinned_for_the_gateway() -> None:
    # The gateway must reproduce this bit for bit; changing it breaks comparisons.
    signature = prompt_signature("What is the refund policy for my last order?")
    assert signature == "1e180c0c1e06120c001e0c18060c0c0c"
    assert prompt_signature("ab") is None
    assert prompt_signature("abc") == "0000000000000000ff00000000000000"
    assert prompt_signature("x" * 100_000) == prompt_signature("x" * 5000)  # first 4 KiB


def test_signature_mass_and_malformed_signatures() -> None:
    mass = signature_mass("1e180c0c1e06120c001e0c18060c0c0c")
    assert mass.shape == (16,) and mass.sum() == pytest.approx(1.0)
    for bad in ("", "1e18", "zz" * 16, "00" * 16):
        with pytest.raises(ValueError):
            signature_mass(bad)


def test_signature_mass_separates_prose_from_code() -> None:
    prose = [
        "Could you explain the shipping options for an order placed today?",
        "How do I reset the password of my account, and where is the setting?",
        "Please summarise the refund policy in two sentences for a customer.",
    ]
    code = [
        "for (i = 0; i < n; i++) { a[i] = b[i] * 2; }",
        "def f(x):\n    return {k: v for k, v in x.items() if v}",
        "SELECT id, sum(x) FROM t WHERE y > 3 GROUP BY id;",
    ]

    def mean_mass(texts: list[str]) -> np.ndarray:
        return np.mean([signature_mass(prompt_signature(text) or "") for text in texts], axis=0)

    assert psi_of_fractions(mean_mass(prose), mean_mass(code)) > 0.1


def test_mann_whitney_and_ks_match_scipy() -> None:
    # Computed here for speed; scipy is the reference (MW: its "asymptotic" method).
    from scipy.stats import ks_2samp, mannwhitneyu

    rng = np.random.default_rng(11)
    for size in (8, 40, 400):
        a = np.round(rng.lognormal(0, 1, size), 1)  # rounded: ties
        b = np.round(rng.lognormal(0.3, 1, size + 7), 1)
        for alternative in ("two-sided", "less", "greater"):
            expected = mannwhitneyu(a, b, alternative=alternative, method="asymptotic").pvalue
            assert mann_whitney(a, b, alternative).pvalue == pytest.approx(expected, rel=1e-9)
        exact = ks_2samp(a, b)
        assert ks(a, b).statistic == pytest.approx(exact.statistic)
        assert ks(a, b).pvalue == pytest.approx(exact.pvalue, rel=0.5)  # Stephens' approximation
    assert mann_whitney([3.0] * 20, [3.0] * 20) == MannWhitney(1.0, 0.5)  # all ties
    # Superiority: P(current > reference), ties half.
    assert mann_whitney([1, 2], [3, 4]).superiority == 1.0
    assert mann_whitney([1, 3], [2, 4]).superiority == 0.75


def test_quantiles_of_sorted_are_numpys() -> None:
    values = np.sort(np.random.default_rng(5).lognormal(0, 1, 101))
    q = np.array([0.0, 0.1, 0.5, 0.9, 0.95, 1.0])
    assert quantiles_of_sorted(values, q) == pytest.approx(np.quantile(values, q))
