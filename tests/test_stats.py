"""The gate's statistics on synthetic samples with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from fitbench.core import stats


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


@pytest.mark.parametrize("n", [1, 3, 6, 10])
def test_exact_signed_rank_distribution_counts_subset_sums(n):
    cdf = stats._signed_rank_null_cdf(n)
    sums = [sum(r for r, bit in zip(range(1, n + 1), bits, strict=True) if bit)
            for bits in np.ndindex(*(2,) * n)]
    expected = np.cumsum(np.bincount(sums, minlength=n * (n + 1) // 2 + 1)) / 2 ** n
    np.testing.assert_allclose(cdf, expected)


def test_signed_rank_tail_for_six_pairs():
    # P(T+ <= 2) = 3/64 <= 0.05 < P(T+ <= 3) = 5/64 (sums 0, 1, 2; then {3} and {1, 2}):
    # the 90% interval drops 3 Walsh averages a side (tables: critical value 2 at n = 6).
    assert stats._signed_rank_tail(6, 0.05) == 3
    assert stats._signed_rank_tail(4, 0.05) == 0  # 1/16 > 0.05: 4 pairs cannot bound a 90% interval


def test_paired_interval_covers_a_known_ratio_at_its_level():
    rng = np.random.default_rng(11)
    trials, covered = 600, 0
    for _ in range(trials):
        drift = rng.lognormal(0.0, 0.20, 9)  # the machine's speed, shared by both epochs of a pair
        base = drift * rng.lognormal(0.0, 0.03, 9)
        cand = drift * rng.lognormal(math.log(1.10), 0.03, 9)
        shift = stats.paired_log_shift(base, cand, confidence=0.90)
        covered += shift.ratio_low <= 1.10 <= shift.ratio_high
    assert 0.86 <= covered / trials <= 0.97


def test_pairing_cancels_drift_that_hides_a_slowdown_from_the_unpaired_test():
    rng = np.random.default_rng(3)
    drift = rng.lognormal(0.0, 0.25, 11)
    base = drift * rng.lognormal(0.0, 0.02, 11)
    cand = 1.2 * drift * rng.lognormal(0.0, 0.02, 11)
    assert stats.paired_p_greater(base, cand, factor=1.05) == pytest.approx(stats.smallest_paired_p(11))
    assert stats.p_greater(base, cand, factor=1.05) > 0.05  # epochs unpaired: lost in the drift
    shift = stats.paired_log_shift(base, cand)
    assert 1.15 < shift.ratio_low <= shift.ratio <= shift.ratio_high < 1.25


def test_paired_samples_must_have_equal_sizes():
    with pytest.raises(ValueError, match="equal sizes"):
        stats.paired_log_shift([1.0, 1.1], [1.0])


def test_mean_paired_shift_is_the_mean_of_the_benchmarks_mean_differences():
    first = ([1.0, 1.0, 1.0], [1.1, 1.2, 1.15])
    second = ([2.0, 2.0], [2.0, 2.2])
    test = stats.mean_paired_shift([first, second])
    d1 = np.log([1.1, 1.2, 1.15])
    d2 = np.log([1.0, 1.1])
    assert test.estimate == pytest.approx((d1.mean() + d2.mean()) / 2)
    variance = (d1.var(ddof=1) / 3 + d2.var(ddof=1) / 2) / 4
    assert test.standard_error == pytest.approx(math.sqrt(variance))
    low, high = test.interval(0.90)
    assert low < test.estimate < high


def test_weighted_holm_gives_each_hypothesis_its_share_and_passes_it_on():
    # Equal weights: the usual Holm.
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # The first hypothesis starts with half of alpha (weight 3 of 6): the second, rejected first
    # (0.001 x 6), passes its share on, so the first needs 0.02 x 5 / 3 where plain Holm asks 0.02 x 3.
    adjusted = stats.holm([0.02, 0.001, 0.3, 0.3], [3, 1, 1, 1])
    assert adjusted == pytest.approx([0.02 * 5 / 3, 0.006, 0.6, 0.6])


def test_the_session_spread_is_estimated_from_ring_means_beyond_what_the_pairs_explain():
    rng = np.random.default_rng(3)
    benchmarks = [[rng.normal(offset, 0.05, 11) for offset in rng.normal(0, 0.04, 4)] for _ in range(30)]
    sd, dof = stats.session_spread(benchmarks)
    assert dof == 90 and 0.03 < sd < 0.05
    quiet = [[rng.normal(0, 0.05, 11) for _ in range(4)] for _ in range(30)]
    assert stats.session_spread(quiet)[0] < 0.015  # no session term: near zero
    assert stats.session_spread([[rng.normal(0, 0.05, 11)]]) == (pytest.approx(float("nan"), nan_ok=True), 0)


def test_the_session_term_widens_an_interval_and_shrinks_only_with_more_sessions():
    shift = stats.Shift(0.0, -0.02, 0.02, 0.90)
    same, _ = stats.fold_session(shift, 1, 0.0)
    assert same.low == pytest.approx(-0.02) and same.high == pytest.approx(0.02)
    one, test = stats.fold_session(shift, 1, 0.03)
    four, _ = stats.fold_session(shift, 4, 0.03)
    assert one.high - one.low > four.high - four.low > 0.04
    assert test.p_greater(0.0) == pytest.approx(0.5)


def test_the_level_of_a_look_is_pococks_constant_boundary():
    """Pocock (Biometrika 1977), Table 1: the two-sided 5% boundary for K equally spaced looks."""
    for looks, boundary in [(2, 2.178), (3, 2.289), (4, 2.361), (5, 2.413), (10, 2.555)]:
        assert scipy_stats.norm.isf(stats.look_level(0.025, looks)) == pytest.approx(boundary, abs=0.001)
    assert stats.look_level(0.05, 1) == 0.05
    # Between no correction and Bonferroni's, and stricter with every look.
    levels = [stats.look_level(0.05, looks) for looks in range(2, 13)]
    assert all(0.05 / looks < level < 0.05 for looks, level in zip(range(2, 13), levels, strict=True))
    assert levels == sorted(levels, reverse=True)

