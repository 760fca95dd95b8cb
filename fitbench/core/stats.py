"""Distribution-free statistics for comparing two samples of epoch times.

Epoch times are compared on a log scale, so a shift is a ratio. The test is Mann-Whitney's
(exact for small samples without ties): it assumes neither normality nor equal variances, a
single slow epoch (a scheduling hiccup) moves it by one rank only, and it is valid for the
handful of rounds a benchmark has. Its confidence interval is the Hodges-Lehmann one: the
order statistics of all pairwise differences, cut where the exact U distribution puts its
tails, so test and interval always agree.

When the two runs were interleaved (`fitbench.processes.turns`: epoch k of the baseline, then epoch k
of the candidate, on a machine whose speed drifts from one second to the next), epochs come
in pairs that saw the same machine; the paired test is Wilcoxon's signed-rank test on the log
differences, with the Hodges-Lehmann interval of their Walsh averages, cut by the exact
signed-rank distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import optimize, signal
from scipy import stats as scipy_stats

EXACT_LIMIT = 50  # exact U distribution up to this many observations a side


@cache
def _u_null_cdf(n: int, m: int) -> np.ndarray:
    """P(U <= u), u = 0..n*m, for Mann-Whitney's U with sample sizes n and m, no ties.

    The count of arrangements with U = u satisfies c(n, m) = c(n-1, m) shifted by m + c(n, m-1).
    """
    counts = [[None] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                counts[i][j] = np.ones(1)
                continue
            size = i * j + 1
            total = np.zeros(size)
            left = counts[i - 1][j]
            total[j: j + len(left)] += left
            right = counts[i][j - 1]
            total[: len(right)] += right
            counts[i][j] = total
    pmf = counts[n][m] / math.comb(n + m, n)
    return np.cumsum(pmf)


def _tail_count(cdf: np.ndarray | None, mean: float, sd: float, tail: float) -> int:
    """Largest k with P(S < k) <= tail for a rank statistic S: from its exact null `cdf`
    (P(S <= s), s = 0, 1, ...) when given, else from its normal approximation."""
    if cdf is not None:
        below = np.nonzero(cdf <= tail)[0]  # P(S <= s) <= tail for s in below
        return int(below[-1]) + 1 if len(below) else 0
    return max(0, int(math.floor(mean + scipy_stats.norm.ppf(tail) * sd)))


def _tail_rank(n: int, m: int, tail: float) -> int:
    """Largest k with P(U < k) <= tail: the interval drops k pairwise differences a side."""
    exact = n <= EXACT_LIMIT and m <= EXACT_LIMIT
    return _tail_count(_u_null_cdf(n, m) if exact else None, n * m / 2,
                       math.sqrt(n * m * (n + m + 1) / 12), tail)


@dataclass(frozen=True)
class Shift:
    """Candidate vs baseline on a log scale; `ratio*` are the same as time ratios."""

    estimate: float  # Hodges-Lehmann: median of pairwise log differences (paired: Walsh averages)
    low: float
    high: float
    confidence: float

    @property
    def ratio(self) -> float:
        return math.exp(self.estimate)

    @property
    def ratio_low(self) -> float:
        return math.exp(self.low)

    @property
    def ratio_high(self) -> float:
        return math.exp(self.high)


def _cut(estimates: np.ndarray, k: int, confidence: float) -> Shift:
    """The Hodges-Lehmann shift: the median of the sorted `estimates`, and the interval that
    drops `k` of them a side ((-inf, inf) when k is 0: too few to reach `confidence`)."""
    estimate = float(np.median(estimates))
    if k == 0:
        return Shift(estimate, -math.inf, math.inf, confidence)
    return Shift(estimate, float(estimates[k - 1]), float(estimates[len(estimates) - k]), confidence)


def log_shift(baseline: Sequence[float], candidate: Sequence[float], confidence: float = 0.90) -> Shift:
    """Ratio candidate/baseline with a two-sided distribution-free confidence interval.

    The interval is (-inf, inf) when the samples are too small to reach `confidence`
    (for example 2 against 2 epochs).
    """
    base, cand = np.log(np.asarray(baseline, float)), np.log(np.asarray(candidate, float))
    differences = np.sort(np.subtract.outer(cand, base).ravel())
    return _cut(differences, _tail_rank(len(cand), len(base), (1 - confidence) / 2), confidence)


def p_greater(baseline: Sequence[float], candidate: Sequence[float], factor: float = 1.0) -> float:
    """One-sided p-value that candidate times exceed baseline times x `factor` (Mann-Whitney)."""
    base = np.log(np.asarray(baseline, float)) + math.log(factor)
    cand = np.log(np.asarray(candidate, float))
    method = "exact" if max(len(base), len(cand)) <= EXACT_LIMIT and \
        len(np.unique(np.concatenate([base, cand]))) == len(base) + len(cand) else "asymptotic"
    return float(scipy_stats.mannwhitneyu(cand, base, alternative="greater", method=method).pvalue)


def smallest_p(n: int, m: int) -> float:
    """The smallest one-sided p-value Mann-Whitney can give for n against m observations."""
    return 1 / math.comb(n + m, n)


def holm(pvalues: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise false-alarm rate at any alpha.

    Weighted (Holm 1979's weighted form): a hypothesis of weight w starts with w / sum(w) of
    alpha, and the share of each one rejected passes to the rest; equal weights are the usual
    Holm (p times the number of hypotheses not yet rejected)."""
    weights = list(weights) if weights is not None else [1.0] * len(pvalues)
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i] / weights[i])
    adjusted = [1.0] * len(pvalues)
    remaining, running = float(sum(weights)), 0.0
    for index in order:
        running = max(running, min(1.0, pvalues[index] * remaining / weights[index]))
        adjusted[index] = running
        remaining -= weights[index]
    return adjusted


@dataclass(frozen=True)
class MeanShiftTest:
    """A t-test of a log shift: run medians when whole runs shift (`run_level`), or the mean
    over benchmarks of interleaved pairs (`mean_paired_shift`)."""

    estimate: float  # log ratio, candidate over baseline
    standard_error: float
    degrees_of_freedom: float  # inf when the run noise is given rather than estimated

    def p_greater(self, log_threshold: float) -> float:
        """One-sided p-value that the log ratio exceeds `log_threshold`."""
        if self.standard_error == 0:  # identical runs: no spread to test against
            return 0.0 if self.estimate > log_threshold else 1.0
        z = (self.estimate - log_threshold) / self.standard_error
        return float(scipy_stats.t.sf(z, self.degrees_of_freedom))

    def p_less(self, log_threshold: float) -> float:
        """One-sided p-value that the log ratio is below `log_threshold`."""
        if self.standard_error == 0:
            return 0.0 if self.estimate < log_threshold else 1.0
        z = (log_threshold - self.estimate) / self.standard_error
        return float(scipy_stats.t.sf(z, self.degrees_of_freedom))

    def interval(self, confidence: float) -> tuple[float, float]:
        half = scipy_stats.t.ppf(0.5 + confidence / 2, self.degrees_of_freedom) * self.standard_error
        return self.estimate - half, self.estimate + half


def run_level(baseline_runs: Sequence[Sequence[float]], candidate_runs: Sequence[Sequence[float]],
              run_noise: float | None = None) -> MeanShiftTest:
    """Test on the mean log run medians, with run-to-run noise `run_noise` (sd of a run's log
    median), or, when it is None, the pooled sd of the runs' log medians (needs 3+ runs)."""
    base = np.log([np.median(run) for run in baseline_runs])
    cand = np.log([np.median(run) for run in candidate_runs])
    if run_noise is None:
        if len(base) + len(cand) < 3:
            raise ValueError("estimating run-to-run noise needs 3 runs or more; give --run-noise")
        return pooled_shift(base, cand)
    return MeanShiftTest(float(cand.mean() - base.mean()), run_noise * math.sqrt(1 / len(base) + 1 / len(cand)),
                         math.inf)


def pooled_shift(baseline: Sequence[float], candidate: Sequence[float]) -> MeanShiftTest:
    """Two-sample t-test of candidate mean minus baseline mean with a pooled sd (3+ values in all):
    of log run medians (`run_level`), or of profiled sessions' mean seconds per step
    (fitbench.compare.explain)."""
    base, cand = np.asarray(baseline, float), np.asarray(candidate, float)
    dof = len(base) + len(cand) - 2
    squares = ((base - base.mean()) ** 2).sum() + ((cand - cand.mean()) ** 2).sum()
    return MeanShiftTest(float(cand.mean() - base.mean()),
                         math.sqrt(squares / dof) * math.sqrt(1 / len(base) + 1 / len(cand)), dof)


@cache
def _signed_rank_null_cdf(n: int) -> np.ndarray:
    """P(T+ <= t), t = 0..n(n+1)/2, for Wilcoxon's signed-rank statistic of n pairs, no ties:
    each rank 1..n is in T+ with probability 1/2, so the counts are those of subset sums."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return np.cumsum(counts / 2.0 ** n)


def _signed_rank_tail(n: int, tail: float) -> int:
    """Largest k with P(T+ < k) <= tail: the interval drops k Walsh averages a side."""
    return _tail_count(_signed_rank_null_cdf(n) if n <= EXACT_LIMIT else None, n * (n + 1) / 4,
                       math.sqrt(n * (n + 1) * (2 * n + 1) / 24), tail)


def _paired_log_differences(baseline: Sequence[float], candidate: Sequence[float]) -> np.ndarray:
    if len(baseline) != len(candidate):
        raise ValueError(f"paired samples need equal sizes, got {len(baseline)} and {len(candidate)}")
    return np.log(np.asarray(candidate, float)) - np.log(np.asarray(baseline, float))


def paired_log_shift(baseline: Sequence[float], candidate: Sequence[float],
                     confidence: float = 0.90) -> Shift:
    """Ratio candidate/baseline of paired samples (pair i ran next to pair i), with the
    distribution-free interval of the Walsh averages of the log differences."""
    differences = _paired_log_differences(baseline, candidate)
    n = len(differences)
    upper = np.triu_indices(n)
    walsh = np.sort(((differences[:, None] + differences[None, :]) / 2)[upper])
    return _cut(walsh, _signed_rank_tail(n, (1 - confidence) / 2), confidence)


def paired_p_greater(baseline: Sequence[float], candidate: Sequence[float], factor: float = 1.0) -> float:
    """One-sided p-value that paired candidate times exceed baseline times x `factor`
    (Wilcoxon's signed-rank test on the log differences)."""
    differences = _paired_log_differences(baseline, candidate) - math.log(factor)
    exact = len(differences) <= EXACT_LIMIT and np.all(differences != 0) and \
        len(np.unique(np.abs(differences))) == len(differences)
    return float(scipy_stats.wilcoxon(differences, alternative="greater",
                                      method="exact" if exact else "approx").pvalue)


def smallest_paired_p(n: int) -> float:
    """The smallest one-sided p-value the signed-rank test can give for n pairs."""
    return 0.5 ** n


@cache
def look_level(alpha: float, looks: int) -> float:
    """The one-sided level of each of `looks` equally spaced looks of a group-sequential test
    whose false alarm, at any look and in either direction, has a chance of 2 alpha: Pocock's
    constant boundary (Biometrika 1977), the c with P(max_k |Z_k| >= c) = 2 alpha for Z_k the
    standardized sum of k equal increments, as level 1 - Phi(c). Between alpha (one look) and
    Bonferroni's alpha / looks, which ignores that the looks share their pairs: 0.0122 against
    0.0056 for alpha 0.05 and 9 looks. The crossing chance is integrated look by look on a grid
    (Armitage, McPherson and Rowe, JRSS A 1969)."""
    if looks <= 1:
        return alpha
    return float(scipy_stats.norm.sf(optimize.brentq(
        lambda c: _crossing_chance(c, looks) - 2 * alpha,
        scipy_stats.norm.isf(alpha), scipy_stats.norm.isf(alpha / looks), xtol=1e-6)))


def _crossing_chance(boundary: float, looks: int, step: float = 0.005) -> float:
    """P(|S_k| >= boundary * sqrt(k) for some k <= looks), S_k a sum of k standard normals."""
    edge = boundary * math.sqrt(looks)
    grid = np.arange(-math.ceil(edge / step), math.ceil(edge / step) + 1) * step
    kernel = scipy_stats.norm.pdf(np.arange(-math.ceil(8 / step), math.ceil(8 / step) + 1) * step) * step
    density = np.where(np.abs(grid) < boundary, scipy_stats.norm.pdf(grid), 0.0)  # paths not stopped at look 1
    for look in range(2, looks + 1):
        density = signal.fftconvolve(density, kernel)[len(kernel) // 2:len(kernel) // 2 + len(grid)]
        density[np.abs(grid) >= boundary * math.sqrt(look)] = 0.0
    return 1.0 - float(np.clip(density, 0.0, None).sum() * step)


def fold_session(shift: Shift, rings: int, session_sd: float) -> tuple[Shift, MeanShiftTest]:
    """A paired interval from `rings` sessions a side, widened by the session-to-session term:
    every pair of a session shares its offset, so more pairs never average it below
    session_sd^2 / rings. The pairs' own standard error is read off the interval's width; the
    sum of the two variances gives a normal interval and the matching test."""
    z = float(scipy_stats.norm.ppf(0.5 + shift.confidence / 2))
    pairs_error = (shift.high - shift.low) / (2 * z)
    test = MeanShiftTest(shift.estimate, math.sqrt(pairs_error ** 2 + session_sd ** 2 / rings), math.inf)
    low, high = test.interval(shift.confidence)
    return Shift(shift.estimate, low, high, shift.confidence), test


def session_excess(rings: Sequence[Sequence[float]]) -> tuple[float, int]:
    """(variance, degrees of freedom) of one benchmark's session term, from its log differences
    grouped by ring: the variance of its ring means beyond what its pairs explain (method of
    moments, may be negative); (nan, 0) with fewer than 2 rings of 2 pairs or more."""
    arrays = [np.asarray(ring, float) for ring in rings if len(ring) >= 2]
    if len(arrays) < 2:
        return math.nan, 0
    means = np.array([ring.mean() for ring in arrays])
    within = float(np.mean([ring.var(ddof=1) / len(ring) for ring in arrays]))
    return float(means.var(ddof=1)) - within, len(arrays) - 1


def session_spread(benchmarks: Sequence[Sequence[Sequence[float]]]) -> tuple[float, int]:
    """(sd, degrees of freedom) of the session term pooled over the benchmarks with 2 rings or
    more (`session_excess` weighted by its degrees of freedom, floored at 0)."""
    excess, dof = 0.0, 0
    for rings in benchmarks:
        variance, count = session_excess(rings)
        if count:
            excess += count * variance
            dof += count
    return (math.sqrt(max(excess / dof, 0.0)) if dof else math.nan), dof


def mean_paired_shift(pairs: Sequence[tuple[Sequence[float], Sequence[float]]]) -> MeanShiftTest:
    """All benchmarks at once: the mean over benchmarks (equal weights) of each one's mean
    paired log difference, with Welch-Satterthwaite degrees of freedom; its ratio is the
    geometric mean of the benchmarks' ratios. `pairs` holds (baseline, candidate) per benchmark."""
    means, variances, dofs = [], [], []
    for baseline, candidate in pairs:
        differences = _paired_log_differences(baseline, candidate)
        if len(differences) < 2:
            raise ValueError("each benchmark needs 2 or more paired epochs")
        means.append(differences.mean())
        variances.append(differences.var(ddof=1) / len(differences))
        dofs.append(len(differences) - 1)
    if not means:
        raise ValueError("no paired benchmarks")
    variance = sum(variances) / len(means) ** 2
    denominator = sum(v ** 2 / d for v, d in zip(variances, dofs, strict=True))
    dof = sum(variances) ** 2 / denominator if denominator > 0 else math.inf
    return MeanShiftTest(float(np.mean(means)), math.sqrt(variance), dof)
