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

Absolute times taken one night after another cannot tell a drifting machine from a slower
commit. A night kept as a `fitbench ab` folder (its verdicts.json beside both sides' runs) of
that night's commit against a pinned reference gives a second series per benchmark: the paired
ratio candidate/reference, which the drift both sides shared cancels (Chromium's perf bots ran
a reference build beside tip-of-tree for this). Its steps are found the same way, on log
ratios. Where a benchmark has ratios, they decide: a step in its absolute times at which the
ratio did not move is named machine drift, and only ratio steps alert. A new reference starts
a new ratio series.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fitbench.compare.results import NotBenchmarkJSON, Run, load_run
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
class Night:
    """One `fitbench ab` of a night's commit (the candidate) against the pinned reference (the base)."""

    path: str  # its folder
    verdicts: dict[str, dict]  # benchmark name -> its verdict as verdicts.json keeps it
    base: list[Run]
    candidate: list[Run]

    @property
    def reference(self) -> str:
        """What the ratios are taken against: the base's commit and all its software (a series' key)."""
        run = self.base[0]
        commit = (run.commit_info or {}).get("id") or ""
        dirty = "+" if (run.commit_info or {}).get("dirty") else ""
        software = run.environment.software
        return ", ".join(filter(None, [f"{commit[:8]}{dirty}" if commit else "",
                                       *(f"{SOFTWARE_NAMES[k]} {software[k]}" for k in SOFTWARE_NAMES
                                         if software.get(k))]))


def reference_label(reference: str) -> str:
    """'e1c492a1 (TensorFlow 2.21.0, Keras 3.15.1)': the reference's commit and framework, to read."""
    commit, *software = reference.split(", ")
    if commit.split(" ")[0] in SOFTWARE_NAMES.values():  # no commit: an environment
        commit, software = "", [commit, *software]
    shown = [part for part in software if part.startswith(("TensorFlow ", "Keras "))]
    return f"{commit} ({', '.join(shown)})" if commit and shown else commit or ", ".join(shown)


def load_night(folder: Path) -> Night:
    """A `fitbench ab` output folder: verdicts.json and both sides' runs beside it (read from the
    folder itself: the paths verdicts.json names were where the A/B ran)."""
    try:
        document = json.loads((folder / "verdicts.json").read_text())
        verdicts = {v["name"]: v for v in document["verdicts"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise NotBenchmarkJSON(f"{folder / 'verdicts.json'}: not a fitbench ab verdicts file ({error})") from error
    sides = {side: [load_run(path) for path in sorted(folder.glob(f"{side}-*.json"))]
             for side in ("base", "candidate")}
    if not sides["base"] or not sides["candidate"]:
        raise NotBenchmarkJSON(f"{folder}: a fitbench ab folder without both sides' runs (base-N.json, "
                               "candidate-N.json)")
    return Night(str(folder), verdicts, sides["base"], sides["candidate"])


@dataclass
class Point:
    """One run of a measurement's series; with `night`, that night's ratio against the reference."""

    run: Run
    record: Record
    night: Night | None = None

    @property
    def value(self) -> float:
        """The median epoch time in seconds, or the ratio candidate/reference."""
        if self.night is not None:
            return self.night.verdicts[self.record.name]["ratio"]
        return self.record.median_epoch_seconds

    @property
    def label(self) -> str:
        return self.run.label



@dataclass
class ChangePoint:
    name: str
    sides: tuple[list[Point], list[Point]] = field(repr=False)  # the runs before the step, and after it
    index: int  # position of the first run after it in the series
    ratio: float  # epoch time after / before (Hodges-Lehmann)
    low: float
    high: float
    p_value: float
    verdict: str  # regression, improvement, shift, or machine drift (absolute times only)
    software: list[str] = field(default_factory=list)  # 'TensorFlow 2.20.0 -> 2.21.0'
    metric: str = ""  # the checked metric's change across the step, when it moved
    measure: str = "epoch time"  # or 'ratio to reference abc12345'
    drift: str = ""  # absolute steps of a benchmark with ratios: what the ratios and the reference did

    @property
    def before(self) -> Point:
        """The last run before the step."""
        return self.sides[0][-1]

    @property
    def after(self) -> Point:
        """The first run after it."""
        return self.sides[1][0]

    @property
    def runs_before(self) -> int:
        return len(self.sides[0])

    @property
    def runs_after(self) -> int:
        return len(self.sides[1])

    @property
    def machine(self) -> str:
        """The machine's state (steal, others' load, frequency) in the 3 runs on each side."""
        return machine_state(self.sides[0][-3:], self.sides[1][:3])


@dataclass
class Series:
    name: str
    points: list[Point]
    change_points: list[ChangePoint] = field(default_factory=list)
    note: str = ""  # why it was not searched, or that nothing was found
    reference: str = ""  # a ratio series: the reference its ratios are taken against
    group: tuple = ()  # (benchmark, measurement key, machine): its epoch times and ratios share it

    @property
    def measure(self) -> str:
        return f"ratio to reference {reference_label(self.reference)}" if self.reference else "epoch time"

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


def series_of(runs: Sequence[Run], nights: Sequence[Night] = ()) -> list[Series]:
    """Every measurement's runs in time order (one machine each; a machine is part of the name):
    the plain runs and each night's first candidate run as epoch times, and each night's
    verdicts as ratios, one series per reference."""
    groups: dict[tuple, list[Point]] = {}
    firsts = [night.candidate[0] for night in nights]
    every = [*runs, *firsts, *(night.base[0] for night in nights)]
    # fitbench's machine keys: a CPU brand that older runs did not record must not split a series.
    machines = {run.path: repr(sorted((key, run.environment.machine.get(key)) for key in MACHINE_KEYS))
                for run in every}
    several = len(set(machines.values())) > 1
    for run in sorted([*runs, *firsts], key=lambda r: r.datetime):
        for record in run.records:
            groups.setdefault((record.name, record.measurement.key(), machines[run.path], ""), []).append(
                Point(run, record))
    for night in sorted(nights, key=lambda n: n.candidate[0].datetime):
        run = night.candidate[0]
        for record in run.records:
            verdict = night.verdicts.get(record.name) or {}
            if isinstance(verdict.get("ratio"), float) and math.isfinite(verdict["ratio"]):
                groups.setdefault((record.name, record.measurement.key(), machines[run.path], night.reference),
                                  []).append(Point(run, record, night))
    out = []
    for (name, key, machine, reference), points in groups.items():
        label = name + (f" on {points[0].run.environment.machine.get('cpu_name')}" if several else "")
        out.append(Series(label, points, reference=reference, group=(name, key, machine)))
    references: dict[tuple, list[Series]] = {}
    for series in out:
        if series.reference:
            references.setdefault(series.group, []).append(series)
    for kept in references.values():
        for older, newer in itertools.pairwise(kept):
            newer.note = (f"the reference moved from {older.reference} to {newer.reference} after "
                          f"{older.points[-1].label}: a new ratio series starts")
    return out


def analyse(series: Series, time_threshold: float = DEFAULTS.time, penalty: float = PENALTY) -> Series:
    """Find and judge the change points of one series (in place; returns it)."""
    completed = [p for p in series.points if p.record.status == "completed" and p.record.steady_seconds]
    if len(completed) < MIN_RUNS:
        series.note = "; ".join(filter(None, [
            series.note, f"{len(completed)} completed runs: too few to search (at least {MIN_RUNS})"]))
        return series
    values = np.log([p.value for p in completed])
    bounds = [0, *significant(values, steps(values, penalty)), len(completed)]
    for k in range(1, len(bounds) - 1):
        start, at, end = bounds[k - 1], bounds[k], bounds[k + 1]
        before, after = completed[start:at], completed[at:end]
        shift = stats.log_shift([p.value for p in before], [p.value for p in after], CONFIDENCE)
        p_value = _t_test(values[start:at], values[at:end])
        series.change_points.append(ChangePoint(
            series.name, (before, after), series.points.index(after[0]), shift.ratio, shift.ratio_low,
            shift.ratio_high, p_value, _verdict(shift.ratio_low, shift.ratio_high, time_threshold),
            software=_software_changes(before[-1].run, after[0].run),
            metric=_metric_change(before, after), measure=series.measure))
    if not series.change_points:
        series.note = "; ".join(filter(None, [series.note, f"no change point in {len(completed)} runs"]))
    return series


def _verdict(low: float, high: float, time_threshold: float) -> str:
    return ("regression" if low > 1 + time_threshold else
            "improvement" if high < 1 / (1 + time_threshold) else "shift")


def name_drift(found: Sequence[Series], time_threshold: float = DEFAULTS.time) -> None:
    """For each step in a benchmark's epoch times, what its ratios to the reference did over the
    same nights: a step they do not show (no change of the threshold's size, and less than the
    step) is machine drift."""
    ratio_series = [s for s in found if s.reference]
    for series in found:
        if series.reference:
            continue
        for change in series.change_points:
            before, after = change.sides
            for ratios in (r for r in ratio_series if r.group == series.group):
                runs_before, runs_after = ({p.run.path for p in side} for side in (before, after))
                ratio_before = [p for p in ratios.points if p.run.path in runs_before]
                ratio_after = [p for p in ratios.points if p.run.path in runs_after]
                if len(ratio_before) < MIN_SEGMENT or len(ratio_after) < MIN_SEGMENT:
                    continue
                shift = stats.log_shift([p.value for p in ratio_before], [p.value for p in ratio_after], CONFIDENCE)
                moved = f"x{shift.ratio:.3f} [{shift.ratio_low:.3f}, {shift.ratio_high:.3f}]"
                reference = _reference_move(ratio_before, ratio_after)
                code = _verdict(shift.ratio_low, shift.ratio_high, time_threshold)
                # Machine drift: the ratios show no change of the threshold's size, and whatever
                # they show is smaller than the step in the epoch times.
                smaller = shift.ratio_high < change.low if change.ratio > 1 else shift.ratio_low > change.high
                against = f"the ratio to reference {reference_label(ratios.reference)}"
                if code == "shift" and smaller:
                    change.verdict = "machine drift"
                    change.drift = f"{against} did not show it: {moved} over the same nights{reference}"
                elif code != "shift":
                    change.drift = f"{against} moved too: {moved}{reference}"
                else:
                    change.drift = f"{against} cannot tell: {moved}{reference}"
                break


def _reference_move(before: list[Point], after: list[Point]) -> str:
    """'; the reference's own epochs x1.21': the median epoch time of the reference's runs, after/before."""
    def median_of(points: list[Point]) -> float | None:
        times = [r.median_epoch_seconds for p in points for r in p.night.base[0].records
                 if r.name == p.record.name and r.steady_seconds]
        return statistics.median(times) if times else None

    old, new = median_of(before), median_of(after)
    return f"; the reference's own epochs x{new / old:.3f}" if old and new else ""


def machine_state(before: Sequence[Point], after: Sequence[Point]) -> str:
    """What the machine was doing in the runs on each side of a step, from the records' timed
    epochs: 'before: steal 0.1%, other processes 3%, 1996 MHz; after: steal 9.0%, ...'."""
    sides = [f"{name}: {state}" for name, points in (("before", before), ("after", after))
             if (state := _state([e for p in points for e in p.record.epochs[1:]]))]
    return "; ".join(sides)


def _state(epochs: list) -> str:
    from fitbench.measure import hardware

    seconds = sum(e.seconds for e in epochs)
    hosts = [(e.seconds, e.hardware.get("host") or {}) for e in epochs]
    known = [(s, h) for s, h in hosts if h.get("steal_seconds") is not None and h.get("cpus")]
    parts = []
    if known and seconds > 0:
        capacity = sum(s * h["cpus"] for s, h in known)
        parts.append(f"steal {sum(h['steal_seconds'] for _, h in known) / capacity:.1%}")
        parts.append(f"other processes {sum(h.get('other_busy_seconds') or 0 for _, h in known) / capacity:.0%}")
    mhz = [h["cpu_mhz"] for _, h in hosts if h.get("cpu_mhz")]
    if mhz:
        parts.append(f"{statistics.median(mhz):.0f} MHz")
    clocks = [g["sm_clock_mhz"] for e in epochs for g in e.hardware.get("gpus", []) if g.get("sm_clock_mhz")]
    if clocks:
        parts.append(f"GPU SM {statistics.median(clocks):.0f} MHz")
    throttled = sum(bool(hardware.throttled(e.hardware)) for e in epochs)
    if throttled:
        parts.append(f"throttled in {throttled} of {len(epochs)} epochs")
    return ", ".join(parts)


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


def history(runs: Sequence[Run], time_threshold: float = DEFAULTS.time, penalty: float = PENALTY,
            nights: Sequence[Night] = ()) -> list[Series]:
    found = [analyse(series, time_threshold, penalty) for series in series_of(runs, nights)]
    name_drift(found, time_threshold)
    return found


def alerts(found: Sequence[Series], last: int) -> list[ChangePoint]:
    """Regressions whose first slower run is among each series' last `last` runs; where a
    benchmark has ratios to a reference, only the ratios' steps (its epoch times are context)."""
    with_ratios = {s.group for s in found if s.reference}
    return [cp for series in found for cp in series.change_points
            if cp.verdict == "regression" and cp.index >= len(series.points) - last
            and (series.reference or series.group not in with_ratios)]
