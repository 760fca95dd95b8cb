"""`fitbench history`: change points in a benchmark's saved runs, over time.

For every measurement (the same machine, the same `Measurement.key`), the runs in time order
form a series: each run's median steady epoch time (on a log scale) and its checked metric.
Steps in the series are found by PELT (``ruptures``, Truong, Oudre and Vayatis 2020) with a
least-squares cost and a BIC-style penalty, ``PENALTY x sigma^2 x log(n)``, where sigma is the
series' own noise, estimated robustly from the differences of consecutive runs (the median
absolute deviation, which a step barely moves). ruptures was chosen over Apache Otava's
E-divisive: Otava pins its own NumPy and SciPy and brings database and Slack clients, while
ruptures needs only NumPy and SciPy, which fitbench already has.

A step is kept when the runs before it and after it (up to the neighbouring steps) differ in
a two-sample t-test on log epoch times at STEP_ALPHA (the same normal model as PELT's least
squares; a rank test could not flag a step two nights old), the weakest dropped first. Each
kept step is then sized like the gate sizes two runs: Hodges-Lehmann ratio of the epoch times
with a 90% interval. A step whose interval lies beyond the time
threshold (5%) is a regression or an improvement; smaller ones are listed as shifts. A step
at which the software (TensorFlow, Keras, CUDA, the driver) changed names that change.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fitbench.compare.results import Run
from fitbench.core import stats
from fitbench.core.record import MACHINE_KEYS, SOFTWARE_NAMES, Record
from fitbench.core.thresholds import DEFAULTS

# Measured on simulated 20-run series (lognormal noise, sd 3%), 2026-11-30: with these two, a
# flat series shows a change point in 1.0% of cases (4.6% under a slow random-walk drift of 0.5%
# a run), a +15% step after run 10 is found exactly there in 97% (with 5% noise: 76%), and a
# +20% step in the last 2 of 14 runs in 98%. tests/test_history.py checks these rates.
PENALTY = 4.0  # x sigma^2 x log(n)
STEP_ALPHA = 0.001  # a step is kept when its two sides differ at this level (t-test on log times)
MIN_RUNS = 6  # fewer runs cannot show a step against its noise
MIN_SEGMENT = 2  # runs on each side of a step
CONFIDENCE = 0.90



@dataclass
class Point:
    """One run of a measurement's series."""

    run: Run
    record: Record

    @property
    def seconds(self) -> float:
        return self.record.median_epoch_seconds

    @property
    def label(self) -> str:
        return self.run.label



@dataclass
class ChangePoint:
    name: str
    before: Point  # the last run before the step
    after: Point  # the first run after it
    index: int  # position of `after` in the series
    ratio: float  # epoch time after / before (Hodges-Lehmann)
    low: float
    high: float
    p_value: float
    runs_before: int
    runs_after: int
    verdict: str  # regression, improvement or shift
    software: list[str] = field(default_factory=list)  # 'TensorFlow 2.20.0 -> 2.21.0'
    metric: str = ""  # the checked metric's change across the step, when it moved


@dataclass
class Series:
    name: str
    points: list[Point]
    change_points: list[ChangePoint] = field(default_factory=list)
    note: str = ""  # why it was not searched, or that nothing was found

    @property
    def partial(self) -> list[str]:
        return [p.label for p in self.points if p.run.partial]


def noise(values: np.ndarray) -> float:
    """The series' run-to-run sd from consecutive differences (MAD, robust to a few steps)."""
    differences = np.diff(values)
    if len(differences) == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(differences - np.median(differences))) / math.sqrt(2))


def steps(values: Sequence[float], penalty: float = PENALTY, min_segment: int = MIN_SEGMENT) -> list[int]:
    """Indices where a new segment starts (PELT, least squares, penalty x sigma^2 x log n)."""
    import ruptures

    signal = np.asarray(values, dtype=float)
    n = len(signal)
    sigma = noise(signal)
    if n < 2 * min_segment or sigma == 0:
        return []
    found = ruptures.Pelt(model="l2", min_size=min_segment, jump=1).fit(signal.reshape(-1, 1)).predict(
        pen=penalty * sigma**2 * math.log(n))
    return [index for index in found if index < n]


def series_of(runs: Sequence[Run]) -> list[Series]:
    """Every measurement's runs in time order (one machine each; a machine is part of the name)."""
    groups: dict[tuple[str, str, str], list[Point]] = {}
    # fitbench's machine keys: a CPU brand that older runs did not record must not split a series.
    machines = {run.path: {key: run.environment.machine.get(key) for key in MACHINE_KEYS} for run in runs}
    several = len({repr(sorted(m.items())) for m in machines.values()}) > 1
    for run in sorted(runs, key=lambda r: r.datetime):
        machine = repr(sorted(machines[run.path].items()))
        for record in run.records:
            groups.setdefault((record.name, record.measurement.key(), machine), []).append(Point(run, record))
    out = []
    for (name, _, _machine), points in groups.items():
        label = name + (f" on {points[0].run.environment.machine.get('cpu_name')}" if several else "")
        out.append(Series(label, points))
    return out


def analyse(series: Series, time_threshold: float = DEFAULTS.time, penalty: float = PENALTY) -> Series:
    """Find and judge the change points of one series (in place; returns it)."""
    completed = [p for p in series.points if p.record.status == "completed" and p.record.steady_seconds]
    if len(completed) < MIN_RUNS:
        series.note = f"{len(completed)} completed runs: too few to search (at least {MIN_RUNS})"
        return series
    values = np.log([p.seconds for p in completed])
    bounds = [0, *significant(values, steps(values, penalty)), len(completed)]
    for k in range(1, len(bounds) - 1):
        start, at, end = bounds[k - 1], bounds[k], bounds[k + 1]
        before, after = completed[start:at], completed[at:end]
        shift = stats.log_shift([p.seconds for p in before], [p.seconds for p in after], CONFIDENCE)
        p_value = _t_test(values[start:at], values[at:end])
        verdict = ("regression" if shift.ratio_low > 1 + time_threshold else
                   "improvement" if shift.ratio_high < 1 / (1 + time_threshold) else "shift")
        series.change_points.append(ChangePoint(
            series.name, before[-1], after[0], series.points.index(after[0]), shift.ratio, shift.ratio_low,
            shift.ratio_high, p_value, len(before), len(after), verdict,
            software=_software_changes(before[-1].run, after[0].run),
            metric=_metric_change(before, after)))
    if not series.change_points:
        series.note = f"no change point in {len(completed)} runs"
    return series


def significant(values: np.ndarray, found: list[int], alpha: float = STEP_ALPHA) -> list[int]:
    """The steps whose two sides (up to the neighbouring steps) differ at `alpha`: the weakest
    of the others is dropped, merging its sides, until every step left is significant."""
    kept = list(found)
    while kept:
        bounds = [0, *kept, len(values)]
        p_values = [_t_test(values[bounds[k - 1]:bounds[k]], values[bounds[k]:bounds[k + 1]])
                    for k in range(1, len(bounds) - 1)]
        weakest = max(range(len(kept)), key=lambda k: p_values[k])
        if p_values[weakest] < alpha:
            return kept
        del kept[weakest]
    return kept


def _t_test(before: np.ndarray, after: np.ndarray) -> float:
    """Two-sided p of a pooled-variance t-test on log epoch times (1.0 when it cannot be told)."""
    from scipy.stats import ttest_ind

    p_value = float(ttest_ind(before, after).pvalue)
    return p_value if math.isfinite(p_value) else 1.0


def _software_changes(before: Run, after: Run) -> list[str]:
    mine, theirs = before.environment.software, after.environment.software
    return [f"{SOFTWARE_NAMES[key]} {mine.get(key)} -> {theirs.get(key)}" for key in SOFTWARE_NAMES
            if mine.get(key) != theirs.get(key)]


def _metric_change(before: list[Point], after: list[Point]) -> str:
    """'test accuracy 0.851 -> 0.802' when the checked metric's median moved by more than the
    gate's metric threshold; '' otherwise."""
    values = [[p.record.target_value for p in side if p.record.target_value is not None] for side in (before, after)]
    if not all(values):
        return ""
    old, new = (statistics.median(side) for side in values)
    record = after[0].record
    if abs(new - old) <= DEFAULTS.metric:
        return ""
    return f"{record.checked_metric} {old:.4g} -> {new:.4g}"


def history(runs: Sequence[Run], time_threshold: float = DEFAULTS.time, penalty: float = PENALTY) -> list[Series]:
    return [analyse(series, time_threshold, penalty) for series in series_of(runs)]


def alerts(found: Sequence[Series], last: int) -> list[ChangePoint]:
    """Regressions whose first slower run is among each series' last `last` runs."""
    return [cp for series in found for cp in series.change_points
            if cp.verdict == "regression" and cp.index >= len(series.points) - last]
