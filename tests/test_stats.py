"""The gate's statistics on synthetic samples with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from fitbench import stats


@pytest.mark.parametrize("n, m", [(3, 3), (4, 6), (9, 9), (12, 7)])
def test_exact_u_distribution_matches_scipy(n, m):
    cdf = stats._u_null_cdf(n, m)
    assert cdf[-1] == pytest.approx(1.0)
    base = np.arange(m, dtype=float)
    for shift in (-3.5, 0.25, 2.5):
        cand = np.arange(n, dtype=float) + shift
        expected = scipy_stats.mannwhitneyu(cand, base, alternative="greater", method="exact").pvalue
        u = scipy_stats.mannwhitneyu(cand, base).statistic
        assert 1 - (cdf[int(u) - 1] if u >= 1 else 0) == pytest.approx(expected)


def test_smallest_p_is_one_over_the_arrangements():
    assert stats.smallest_p(3, 3) == pytest.approx(1 / 20)
    assert stats.p_greater([1.0, 1.1, 1.2], [2.0, 2.1, 2.2]) == pytest.approx(1 / 20)


def test_shift_interval_covers_a_known_ratio_at_its_level():
    rng = np.random.default_rng(7)
    trials, covered = 600, 0
    for _ in range(trials):
        base = rng.lognormal(0.0, 0.05, 8)
        cand = rng.lognormal(math.log(1.10), 0.05, 8)
        shift = stats.log_shift(base, cand, confidence=0.90)
        covered += shift.ratio_low <= 1.10 <= shift.ratio_high
    assert 0.86 <= covered / trials <= 0.97  # 90% nominal; discreteness makes it a little conservative


def test_shift_estimate_recovers_an_exact_ratio():
    base = [1.00, 1.02, 0.98, 1.01, 0.99]
    shift = stats.log_shift(base, [1.2 * b for b in base])
    assert shift.ratio == pytest.approx(1.2)
    assert shift.ratio_low <= 1.2 <= shift.ratio_high


def test_too_few_rounds_give_an_unbounded_interval():
    shift = stats.log_shift([1.0, 1.1], [1.5, 1.6], confidence=0.90)
    assert shift.ratio_low == 0 and math.isinf(shift.ratio_high)


def test_p_greater_uses_the_threshold_factor():
    base = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01]
    slower = [1.10 * b for b in base]
    assert stats.p_greater(base, slower, factor=1.0) < 0.01  # 10% slower than the baseline
    assert stats.p_greater(base, slower, factor=1.2) > 0.5  # but not 20% slower


def test_holm():
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.holm([]) == []
    assert stats.holm([0.2, 0.2]) == pytest.approx([0.4, 0.4])
