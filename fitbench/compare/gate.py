"""The regression gate's decision: compare candidate runs with baseline runs, benchmark by benchmark.

Only like is compared with like. The runs must come from one machine (CPU model, GPUs, OS,
architecture; else `MachineMismatch`, unless allowed) and the same software (TensorFlow,
Keras, CUDA, cuDNN, Python; else `SoftwareMismatch`, unless the user asks to compare across
an upgrade). A benchmark is compared only when its measurement (fitbench.core.record) is the same
on both sides; otherwise it is *incomparable*, with the differing fields named. A benchmark
of the baseline that the candidate lacks is *missing* and fails the gate unless allowed; one
only the candidate has is *new*. Nothing comparable at all raises `NothingComparable`.

Three things are gated, each with its own direction and threshold (fitbench.core.thresholds):

* steady-state epoch time (slower is worse): a *regression* needs the slowdown to be larger
  than the threshold *and* significant: a one-sided test that the candidate is slower than
  the baseline x (1 + threshold), with Holm's adjustment over every benchmark compared, so
  the chance of any false alarm stays at alpha. The unit of the test depends on the runs:
  - two runs of one `fitbench interleave` ring: epoch pairs (Wilcoxon's signed-rank test),
    plus one verdict on all benchmarks at once (geometric mean of the ratios);
  - 3 runs or more: run medians, with the run-to-run noise estimated from them (t-test);
  - one run a side: whole runs drift on a shared machine (10-30% on a 2-vCPU VM), so epochs
    are not independent samples. Run medians are compared with the run-to-run noise given
    (`--run-noise`, measured by `fitbench noise`), or, when it is unknown, with the noise
    assumed from this project's shared VM (thresholds.ASSUMED_RUN_NOISE) or from what the runs
    show where that is more (`assumed_run_noise`), and the verdict says so: only a slowdown
    beyond what that noise can produce is a regression.
  *no change* needs the (1 - 2 alpha) interval inside +-threshold; anything else is
  *inconclusive*, and the note says why.
* the checked metric (the workload's: accuracy, AUC, MAE, ...): a worsening of more than the
  threshold against its goal (a drop for accuracy, a rise for MAE). Training is seeded: on one
  machine the value repeats.
* first-epoch time (tracing): one value per run, bimodal. It is gated only when each side
  has enough runs for a rank test to pass Holm; otherwise it is *informational*.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fitbench.compare.results import Run, efficiency
from fitbench.core import stats
from fitbench.core.options import GateSettings
from fitbench.core.record import COMPLETED, MACHINE_KEYS, SOFTWARE_KEYS, SOFTWARE_NAMES, Record
from fitbench.core.thresholds import ASSUMED_RUN_NOISE, ASSUMED_SESSION_NOISE, Thresholds, thresholds_for
from fitbench.measure import hardware

REGRESSION, IMPROVEMENT, NO_CHANGE, INCONCLUSIVE = "regression", "improvement", "no change", "inconclusive"
MISSING, NEW, INCOMPARABLE, INFORMATIONAL = "missing", "new", "incomparable", "informational"
FAILED = "failed"  # the candidate's training did not complete (it diverged)
VERDICTS = (REGRESSION, FAILED, MISSING, INCOMPARABLE, IMPROVEMENT, INCONCLUSIVE, NO_CHANGE, NEW)
OVERALL = "all benchmarks (geometric mean)"


class MachineMismatch(ValueError):
    """The runs come from different machines: their times say nothing about the code."""


class SoftwareMismatch(ValueError):
    """The runs come from different software versions and the user did not ask to compare them."""


class NothingComparable(ValueError):
    """No benchmark measured the same thing in both runs."""


@dataclass
class Verdict:
    name: str
    verdict: str  # the worst of the checks below that gate
    time: str = "-"
    metric: str = "-"  # the checked metric's verdict
    first_epoch: str = "-"
    ratio: float = math.nan  # candidate / baseline median-shift estimate of epoch time
    ratio_low: float = math.nan
    ratio_high: float = math.nan
    p_regression: float = math.nan  # Holm-adjusted
    p_improvement: float = math.nan
    baseline_epochs: int = 0
    candidate_epochs: int = 0
    baseline_metric: float | None = None
    candidate_metric: float | None = None
    metric_name: str = ""  # 'test accuracy', 'validation mae'
    goal: str = ">="
    first_epoch_ratio: float = math.nan
    # Secondary, never gated: training FLOP/s over each run's own measured matmul peak, the one
    # figure that means the same on two machines.
    baseline_efficiency: float | None = None
    candidate_efficiency: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    method: str = ""  # which test decided the epoch-time verdict
    note: str = ""
    differences: list[str] = field(default_factory=list)  # incomparable: the fields that differ
    # The code under test changed (model, optimizer, loss; parameters, FLOPs): judged, and named.
    code_changes: list[str] = field(default_factory=list)
    # Epochs whose GPU clocks were held down (fitbench.measure.hardware): 'thermal throttling in 4 of 11
    # candidate epochs'. A time verdict then says so instead of judging the code.
    throttling: str = ""
    # Epochs that lost a notable share of the machine (fitbench.measure.hardware.noise_shares):
    # 'candidate epochs 3, 7 lost 18%, 22% of the machine to steal'. Said, not judged.
    machine_noise: str = ""


@dataclass
class Comparison:
    baseline: list[str]  # run labels: path and what pytest-benchmark knows of it
    candidate: list[str]
    alpha: float
    verdicts: list[Verdict]  # in the grid's order
    environment: str  # the candidate's machine and software, one line
    machine_mismatch: list[str]
    software_changes: list[str]  # 'TensorFlow 2.20.0 -> 2.21.0'
    allow_missing: bool = False
    overall: Verdict | None = None  # interleaved runs: all benchmarks at once

    @property
    def failures(self) -> list[Verdict]:
        """What fails the gate: regressions, failed trainings, and missing benchmarks unless allowed."""
        every = [*self.verdicts, *([self.overall] if self.overall else [])]
        return [v for v in every if v.verdict in (REGRESSION, FAILED)
                or (v.verdict == MISSING and not self.allow_missing)]

    def counts(self) -> dict[str, int]:
        """How many benchmarks got each verdict (the overall verdict is not counted)."""
        return {name: sum(v.verdict == name for v in self.verdicts) for name in VERDICTS}

    def as_dict(self) -> dict[str, Any]:
        def plain(verdict: Verdict) -> dict[str, Any]:
            return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in asdict(verdict).items()}

        return {"baseline": self.baseline, "candidate": self.candidate, "alpha": self.alpha,
                "counts": self.counts(), "environment": self.environment,
                "machine_mismatch": self.machine_mismatch, "software_changes": self.software_changes,
                "failed": bool(self.failures),
                "overall": plain(self.overall) if self.overall else None,
                "verdicts": [plain(v) for v in self.verdicts]}


def environment_differences(baseline: Sequence[Run], candidate: Sequence[Run]) -> tuple[list[str], list[str]]:
    """(machine differences 'cpu_name: a (file) != b (file)', software changes 'TensorFlow a -> b')."""
    runs = [*baseline, *candidate]
    first = runs[0].environment
    machine = []
    for run in runs[1:]:
        other = run.environment
        for key in (*MACHINE_KEYS, "cpu_brand"):
            if key == "cpu_brand" and None in (other.machine.get(key), first.machine.get(key)):
                continue  # an older file, or py-cpuinfo could not read it
            if other.machine.get(key) != first.machine.get(key):
                machine.append(f"{key}: {first.machine.get(key)!r} ({runs[0].path}) != "
                               f"{other.machine.get(key)!r} ({run.path})")
    software = []
    for key in SOFTWARE_KEYS:
        before = [run.environment.software.get(key) for run in baseline]
        after = [run.environment.software.get(key) for run in candidate]
        if set(before) != set(after) or len(set(before)) > 1:
            software.append(f"{SOFTWARE_NAMES[key]} {'/'.join(map(str, dict.fromkeys(before)))} -> "
                            f"{'/'.join(map(str, dict.fromkeys(after)))}")
    return machine, software


def _pool(runs: Sequence[Run]) -> dict[str, list[Record]]:
    pooled: dict[str, list[Record]] = {}
    for run in runs:
        for record in run.records:
            pooled.setdefault(record.key, []).append(record)
    return pooled


def _measurement_differences(base: list[Record], cand: list[Record]) -> list[str]:
    reference = base[0].measurement
    differences: list[str] = []
    for record in [*base[1:], *cand]:
        for line in reference.differences(record.measurement):
            if line not in differences:
                differences.append(line)
    return differences


def _code_changes(base: list[Record], cand: list[Record]) -> list[str]:
    """What the candidate's code changed in the model: 'parameters 266,610 -> 300,000', ..."""
    before, after = base[0], cand[0]
    changes = before.measurement.code_changes(after.measurement)
    for label, a, b in (("parameters", before.params, after.params),
                        ("training FLOPs per sample", before.flops_per_sample, after.flops_per_sample)):
        if a and b and a != b:
            changes.append(f"{label} {a:,} -> {b:,}")
    return changes


def _throttling(base: list[Record], cand: list[Record]) -> str:
    """'thermal throttling in 4 of 11 candidate epochs; power ...', or '' when no epoch throttled."""
    parts = []
    for side, records in (("baseline", base), ("candidate", cand)):
        epochs = [e for r in records for e in r.epochs[1:]]
        for kind in ("thermal", "power"):
            count = sum(hardware.throttled(e.hardware) == kind for e in epochs)
            if count:
                parts.append(f"{kind} throttling in {count} of {len(epochs)} {side} epochs")
    return "; ".join(parts)


def _machine_noise(base: list[Record], cand: list[Record], shown: int = 3) -> str:
    """'candidate epochs 3, 7 lost 22%, 18% of the machine to steal; ...' for the epochs that lost
    at least hardware.NOTABLE_SHARE of the machine's time to steal or to other processes (the
    worst `shown` of each), or '' when none did (or the records do not say)."""
    parts = []
    for side, records in (("baseline", base), ("candidate", cand)):
        for cause, what in (("steal", "to steal"), ("other", "to other processes")):
            hits = sorted(((share, run, number) for run, record in enumerate(records, 1)
                           for number, epoch in enumerate(record.epochs[1:], 2)
                           if (share := hardware.noise_shares(epoch.seconds, epoch.hardware.get("host", {}))
                               .get(cause, 0.0)) >= hardware.NOTABLE_SHARE), reverse=True)
            if not hits:
                continue
            where = ", ".join(f"{number}" + (f" (run {run})" if len(records) > 1 else "")
                              for _, run, number in hits[:shown])
            more = f" and {len(hits) - shown} more" if len(hits) > shown else ""
            parts.append(f"{side} epoch{'s' if len(hits) > 1 else ''} {where}{more} lost "
                         f"{', '.join(f'{share:.0%}' for share, _, _ in hits[:shown])} of the machine {what}")
    return "; ".join(parts)


def interleaved_pairs(base: list[Record], cand: list[Record]) -> tuple[list[float], list[float]] | None:
    """The steady epochs of baseline and candidate runs that took turns, paired epoch by epoch
    and ring by ring (several rings: the rounds of `fitbench ab`), when every record has its
    partner in its ring and every pair ran within one round of turns; else None."""
    partners = {(c.interleave or {}).get("ring"): c for c in cand}
    if len(base) != len(cand) or None in partners or len(partners) != len(cand):
        return None
    seconds_b: list[float] = []
    seconds_c: list[float] = []
    for b in base:
        c = partners.get((b.interleave or {}).get("ring"))
        if c is None or c.interleave["index"] == b.interleave["index"]:
            return None
        turns_b, turns_c = [e.turn for e in b.epochs[1:]], [e.turn for e in c.epochs[1:]]
        if not len(b.steady_seconds) == len(c.steady_seconds) == len(turns_b) == len(turns_c) \
                or None in turns_b + turns_c:
            return None
        if any(abs(tb - tc) >= b.interleave["size"] for tb, tc in zip(turns_b, turns_c, strict=True)):
            return None
        seconds_b += b.steady_seconds
        seconds_c += c.steady_seconds
    return seconds_b, seconds_c


def pair_rings(base: list[Record]) -> list[str]:
    """The ring (session pair) of each epoch pair `interleaved_pairs` gives, in its order."""
    return [str(b.interleave["ring"]) for b in base for _ in b.steady_seconds]


@dataclass
class Sessions:
    """The session-to-session term of interleaved runs: its sd, and where it comes from. `sd` is
    the all-benchmarks verdict's; each benchmark's is `of(name)`."""

    sd: float
    source: str  # 'estimated from the rounds (6 df)', or 'assumed'
    typical: float = ASSUMED_SESSION_NOISE  # the median benchmark's own, never below the floor
    typical_source: str = "assumed"
    own: dict[str, tuple[float, int]] = field(default_factory=dict)  # name -> (its own sd, df)

    def describe(self, rings: int) -> str:
        return f"{rings} session pair{'s' if rings > 1 else ''}, session spread {self.sd:.3f} {self.source}"

    def of(self, name: str) -> Sessions:
        """A benchmark's session term: the larger of its own (from its rounds) and the typical
        benchmark's. Benchmarks differ (on the 2-vCPU VM a CNN's sessions differed by 4-8%, the
        MLPs' by 0-4%), so a spread pooled over all would be too wide for some and too narrow
        for others; a benchmark's own, from 2-3 rounds, is too uncertain to go below the typical."""
        own, dof = self.own.get(name, (math.nan, 0))
        if dof and own > self.typical:
            return Sessions(own, f"this benchmark's own, from its rounds ({dof} df)")
        return Sessions(self.typical, self.typical_source)


def session_term(paired: dict[str, tuple[list[float], list[float]]], rings: dict[str, list[str]]) -> Sessions:
    """The session spread, estimated from every interleaved benchmark's ring means when rounds
    allow it; never below the spread measured on a quiet shared VM (ASSUMED_SESSION_NOISE), since a
    few rounds can estimate it near zero by chance. Pooled for the all-benchmarks verdict; each
    benchmark's is `Sessions.of`."""
    grouped = {}
    for name, (base, cand) in paired.items():
        by_ring: dict[str, list[float]] = {}
        for ring, b, c in zip(rings[name], base, cand, strict=True):
            by_ring.setdefault(ring, []).append(math.log(c / b))
        grouped[name] = list(by_ring.values())
    own = {}
    for name, by_ring in grouped.items():
        variance, count = stats.session_excess(by_ring)
        if count:
            own[name] = (math.sqrt(max(variance, 0.0)), count)
    typical, typical_source = ASSUMED_SESSION_NOISE, "assumed"
    if own:
        median = statistics.median(sd for sd, _ in own.values())
        if median > ASSUMED_SESSION_NOISE:
            typical, typical_source = median, f"the median benchmark's, from the rounds ({len(own)} benchmarks)"
        else:
            typical_source = f"assumed (the median benchmark's, {median:.3f}, is below it)"
    sd, dof = stats.session_spread(list(grouped.values()))
    if dof and sd > ASSUMED_SESSION_NOISE:
        return Sessions(sd, f"estimated from the rounds ({dof} df)", typical, typical_source, own)
    floor = f" (the rounds' estimate {sd:.3f}, {dof} df, is below it)" if dof else ""
    return Sessions(ASSUMED_SESSION_NOISE, f"assumed{floor}", typical, typical_source, own)


TimeTest = tuple[stats.Shift, float, float, str, float]  # interval, p regression, p improvement, method, smallest p


def looked(test: TimeTest, looks: int, alpha: float) -> TimeTest:
    """One look of a group-sequential test of at most `looks` looks (`fitbench ab --budget`
    looks after every round): the test was made at the level of each look (`stats.look_level`:
    Pocock's constant boundary), so its p-values are scaled by alpha over that level: a false
    alarm at any look stays within alpha, and Holm reads the p-values as before."""
    shift, p_reg, p_imp, method, floor = test
    if looks <= 1:
        return test
    level = stats.look_level(alpha, looks)
    scale = alpha / level
    return (shift, min(1.0, scale * p_reg), min(1.0, scale * p_imp),
            f"group-sequential, one of at most {looks} looks, each at level {level:.4f} (Pocock); {method}",
            min(1.0, scale * floor))


def _epoch_time_test(base: list[Record], cand: list[Record], pairs: tuple[list[float], list[float]] | None,
                     limits: Thresholds, alpha: float, run_noise: float | str,
                     sessions: Sessions | None = None) -> TimeTest:
    """(interval of the ratio, p of a regression, p of an improvement, method, smallest p the
    test can give) for one benchmark. Interleaved pairs: the session term (`sessions`) is
    folded in, so that one round cannot look surer than the spread between rounds allows."""
    factor, confidence = 1 + limits.time, 1 - 2 * alpha
    sessions = sessions or Sessions(ASSUMED_SESSION_NOISE, "assumed")
    if pairs is not None:
        base_epochs, cand_epochs = pairs
        shift, test = stats.fold_session(stats.paired_log_shift(base_epochs, cand_epochs, confidence),
                                         len(base), sessions.sd)
        return (shift, test.p_greater(math.log(factor)), test.p_less(-math.log(factor)),
                f"interleaved, signed-rank interval on {len(base_epochs)} pairs, {sessions.describe(len(base))}",
                0.0)
    base_runs = [r.steady_seconds for r in base]
    cand_runs = [r.steady_seconds for r in cand]
    if run_noise == 0:
        base_epochs = [s for run in base_runs for s in run]
        cand_epochs = [s for run in cand_runs for s in run]
        shift = stats.log_shift(base_epochs, cand_epochs, confidence)
        return (shift, stats.p_greater(base_epochs, cand_epochs, factor),
                stats.p_greater(cand_epochs, base_epochs, factor),
                "epochs, Mann-Whitney (runs assumed not to drift: --run-noise 0)",
                stats.smallest_p(len(cand_epochs), len(base_epochs)))
    runs = f"{len(base_runs)} vs {len(cand_runs)} runs"
    if run_noise == "auto" and len(base_runs) + len(cand_runs) >= 3:
        noise, method = None, f"run medians, {runs}, run noise estimated from them"
    elif run_noise == "auto":
        noise, why = assumed_run_noise(base, cand)
        method = (f"run medians, {runs}, run noise unknown: {noise:.3f} assumed ({why}; measure yours with "
                  "fitbench noise, or take turns with fitbench ab)")
    else:
        noise, method = float(run_noise), f"run medians, {runs}, run noise {float(run_noise):.3f}"
    test = stats.run_level(base_runs, cand_runs, noise)
    low, high = test.interval(confidence)
    return (stats.Shift(test.estimate, low, high, confidence), test.p_greater(math.log(factor)),
            test.p_less(-math.log(factor)), method, 0.0)


def assumed_run_noise(base: list[Record], cand: list[Record]) -> tuple[float, str]:
    """The run-to-run noise assumed for runs that did not take turns and are too few to estimate
    it, and why: a shared VM's drift (ASSUMED_RUN_NOISE), or what the runs show where it is more.
    A run's median can move as far as its own epochs scatter (short epochs on a busy machine
    scatter most), so the pooled sd of the runs' log epoch times is a floor; and when other
    processes or steal took a share of the machine from one side's epochs at least
    hardware.NOTABLE_SHARE larger than from the other's, that difference
    (as a log ratio of the time left to each) is added in quadrature, since it moves one side's
    epochs and not the other's."""
    spreads = [statistics.stdev([math.log(s) for s in record.steady_seconds])
               for record in (*base, *cand) if len(record.steady_seconds) >= 2]
    spread = math.sqrt(statistics.fmean([s * s for s in spreads])) if spreads else 0.0
    noise, why = ASSUMED_RUN_NOISE, "a shared VM's drift"
    if spread > noise:
        noise, why = spread, f"the epochs' own spread, {spread:.3f}"
    lost = [hardware.median_share(e for r in records for e in r.epochs[1:]) for records in (base, cand)]
    if not any(math.isnan(share) for share in lost):
        contention = abs(math.log((1 - min(lost[0], 0.95)) / (1 - min(lost[1], 0.95))))
        if abs(lost[0] - lost[1]) >= hardware.NOTABLE_SHARE:
            noise = math.hypot(noise, contention)
            why += (f", and other processes and steal took {lost[0]:.0%} of the machine from the baseline's "
                    f"epochs and {lost[1]:.0%} from the candidate's")
    return noise, why


def _first_epoch_test(base: list[Record], cand: list[Record], limits: Thresholds,
                      alpha: float, family: int) -> tuple[float, float, float]:
    """(ratio of mean first epochs, p of a regression, p of an improvement): Mann-Whitney over
    the runs' first epochs; NaN p-values when the runs are too few for the test to pass Holm
    over `family` benchmarks (then the check is informational)."""
    b = [r.first_epoch_seconds for r in base]
    c = [r.first_epoch_seconds for r in cand]
    ratio = statistics.fmean(c) / statistics.fmean(b)
    if stats.smallest_p(len(c), len(b)) >= alpha / family:
        return ratio, math.nan, math.nan
    factor = 1 + limits.first_epoch
    return ratio, stats.p_greater(b, c, factor), stats.p_greater(c, b, factor)


def _efficiency(records: list[Record], peaks_of: dict[int, dict]) -> float | None:
    values = [efficiency(r, peaks_of[id(r)]) for r in records]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _metric(records: list[Record]) -> float | None:
    values = [r.target_value for r in records if r.target_value is not None]
    return statistics.fmean(values) if values else None


def _metric_name(records: list[Record]) -> str:
    return next((r for r in records if r.check), records[0]).checked_metric


def compare(baseline: Sequence[Run], candidate: Sequence[Run], settings: GateSettings | None = None,
            looks: int = 1, **overrides: Any) -> Comparison:
    """Verdicts for every benchmark of the candidate and baseline runs (see the module docstring).

    A short pipeline: admit (the machines and software, then each benchmark: missing, failed,
    new or incomparable ones get their verdict there), test (epoch time, the checked metric, the
    first epoch), combine (all benchmarks at once, from interleaved pairs), correct (Holm over
    the family; a throttled GPU overrides a time verdict), decide (each benchmark's one verdict).

    `settings` are the gate's options (fitbench.core.options.GateSettings); keyword arguments
    override single settings (alpha=0.01, run_noise=0.1, ...). `looks`: this comparison is one
    look of a group-sequential test of at most that many (`fitbench ab --budget` looks after every
    round of turns, and stops at the first decision): each epoch-time test is made at the level
    of one look (`looked`)."""
    settings = settings or default_settings()
    if overrides:
        settings = GateSettings(**{**settings.__dict__, **overrides})
    for run in (*baseline, *candidate):
        if not run.records:
            raise NothingComparable(f"{run.path} has no benchmarks (its session ran none: all deselected or "
                                    "skipped, or every test failed before training); compare runs that trained")
    machine, software = _admit_environments(baseline, candidate, settings)
    base_rows, cand_rows = _pool(baseline), _pool(candidate)
    names = list(cand_rows) + [name for name in base_rows if name not in cand_rows]  # grid order
    peaks_of = {id(record): run.info.peak_gflops for run in [*baseline, *candidate] for record in run.records}
    tests = _Tests(sessions=_sessions(base_rows, cand_rows))
    verdicts: dict[str, Verdict] = {}
    for name in names:
        base, cand = base_rows.get(name), cand_rows.get(name)
        reference = (cand or base)[0]
        limits = thresholds_for(name, reference.group, reference.gate, settings.defaults, settings.overrides)
        verdicts[name] = (_admit(name, base, cand, limits, settings)
                          or _test(name, base, cand, limits, settings, looks, peaks_of, len(names), tests))
    if not tests.time and not any(v.verdict == FAILED for v in verdicts.values()):
        reasons = [f"{v.name}: {v.verdict}" + (f" ({v.note})" if v.note else "") for v in verdicts.values()]
        raise NothingComparable("no benchmark measured the same thing in both runs:\n  " + "\n  ".join(reasons))
    overall = _combine(tests, settings, looks)
    if overall is not None:
        verdicts[overall.name] = overall
    _correct(verdicts, tests, overall, settings.alpha)
    _decide(verdicts, overall)
    return Comparison([run_label(r) for r in baseline], [run_label(r) for r in candidate], settings.alpha,
                      [verdicts[n] for n in names], candidate[0].environment.describe(), machine, software,
                      settings.allow_missing, overall)


@dataclass
class _Tests:
    """What the test step found, for the steps after it."""

    time: list[tuple[str, float, float]] = field(default_factory=list)  # (name, p_regression, p_improvement)
    first_epoch: list[tuple[str, float, float]] = field(default_factory=list)
    smallest: dict[str, float] = field(default_factory=dict)  # the smallest p-value each test could reach
    paired: dict[str, Any] = field(default_factory=dict)  # name -> (baseline, candidate) epochs of a ring
    rings: dict[str, list[str]] = field(default_factory=dict)  # name -> the ring of each pair
    sessions: Sessions | None = None  # the session term of interleaved pairs


def _sessions(base_rows: dict[str, list[Record]], cand_rows: dict[str, list[Record]]) -> Sessions:
    """The session term, from every benchmark interleaved alike on both sides."""
    paired, rings = {}, {}
    for name, base in base_rows.items():
        cand = cand_rows.get(name)
        if cand and not _measurement_differences(base, cand) and (pairs := interleaved_pairs(base, cand)):
            paired[name], rings[name] = pairs, pair_rings(base)
    return session_term(paired, rings)


def _admit_environments(baseline: Sequence[Run], candidate: Sequence[Run],
                        settings: GateSettings) -> tuple[list[str], list[str]]:
    """The machine and software differences, refused unless the settings allow them."""
    machine, software = environment_differences(baseline, candidate)
    if machine and not settings.allow_mismatch:
        raise MachineMismatch(
            "refusing to compare runs from different machines:\n  " + "\n  ".join(machine)
            + "\ncompare runs of one machine (or pass --allow-mismatch to compare anyway)")
    if software and not settings.compare_software:
        raise SoftwareMismatch(
            "the runs differ in software: " + "; ".join(software)
            + "; to ask whether that change made training slower, pass --compare-software "
            "(--gate-compare-software in pytest)")
    return machine, software


def _admit(name: str, base: list | None, cand: list | None, limits: Thresholds,
           settings: GateSettings) -> Verdict | None:
    """The verdict of a benchmark that cannot be tested (missing, failed, new, incomparable), or None."""
    thresholds = asdict(limits)
    if cand is None:
        return Verdict(name, MISSING, thresholds=thresholds,
                       note="in the baseline, not in the candidate (it crashed, was skipped or deselected)"
                       + (" (allowed)" if settings.allow_missing else "; pass --allow-missing if that is intended"))
    failed = [r for r in cand if r.status != COMPLETED]
    if failed:
        return Verdict(name, FAILED, thresholds=thresholds, note=failed[0].failure or failed[0].status)
    if base is None:
        return Verdict(name, NEW, thresholds=thresholds, note="not in the baseline")
    failed = [r for r in base if r.status != COMPLETED]
    if failed:
        return Verdict(name, INCOMPARABLE, thresholds=thresholds,
                       note=f"the baseline's training did not complete: {failed[0].failure}")
    differences = _measurement_differences(base, cand)
    if differences:
        return Verdict(name, INCOMPARABLE, thresholds=thresholds, differences=differences,
                       note="measured different things: " + "; ".join(differences))
    return None


def _test(name: str, base: list, cand: list, limits: Thresholds, settings: GateSettings, looks: int,
          peaks_of: dict[int, Any], family: int, tests: _Tests) -> Verdict:
    """A benchmark measured alike on both sides: its epoch time, checked metric and first epoch tested
    (the p-values kept in `tests` for the correction); its verdict decided later."""
    pairs = interleaved_pairs(base, cand)
    shift, p_reg, p_imp, method, floor = looked(_epoch_time_test(
        base, cand, pairs, limits, stats.look_level(settings.alpha, looks), settings.run_noise,
        tests.sessions.of(name) if tests.sessions else None), looks, settings.alpha)
    tests.time.append((name, p_reg, p_imp))
    tests.smallest[name] = floor
    if pairs is not None:
        tests.paired[name], tests.rings[name] = pairs, pair_rings(base)
    base_value, cand_value = _metric(base), _metric(cand)
    goal = cand[0].goal
    first_ratio, first_reg, first_imp = _first_epoch_test(base, cand, limits, settings.alpha, family)
    tests.first_epoch.append((name, first_reg, first_imp))
    return Verdict(
        name, "", metric=_metric_verdict(base_value, cand_value, goal, limits.metric), ratio=shift.ratio,
        ratio_low=shift.ratio_low, ratio_high=shift.ratio_high,
        baseline_epochs=sum(len(r.steady_seconds) for r in base),
        candidate_epochs=sum(len(r.steady_seconds) for r in cand), baseline_metric=base_value,
        candidate_metric=cand_value, metric_name=_metric_name(cand), goal=goal,
        first_epoch_ratio=first_ratio, thresholds=asdict(limits), method=method,
        code_changes=_code_changes(base, cand), throttling=_throttling(base, cand),
        machine_noise=_machine_noise(base, cand),
        baseline_efficiency=_efficiency(base, peaks_of), candidate_efficiency=_efficiency(cand, peaks_of))


def _metric_verdict(base_value: float | None, cand_value: float | None, goal: str, threshold: float) -> str:
    """Worse is a drop for a metric whose goal is >= (accuracy), a rise for <= (an error)."""
    if base_value is None or cand_value is None:
        return INCONCLUSIVE
    worsening = base_value - cand_value if goal == ">=" else cand_value - base_value
    if worsening > threshold:
        return REGRESSION
    if worsening < -threshold:
        return IMPROVEMENT
    return NO_CHANGE


def _combine(tests: _Tests, settings: GateSettings, looks: int) -> Verdict | None:
    """The verdict on all benchmarks at once, when every tested benchmark was interleaved (2 or more)."""
    if len(tests.paired) < 2 or len(tests.paired) != len(tests.time):
        return None
    overall, p_reg, p_imp = _overall(list(tests.paired.values()), settings.defaults, settings.alpha, looks,
                                     [tests.rings[name] for name in tests.paired], tests.sessions)
    tests.time.append((overall.name, p_reg, p_imp))
    tests.smallest[overall.name] = 0.0
    return overall


def _correct(verdicts: dict[str, Verdict], tests: _Tests, overall: Verdict | None, alpha: float) -> None:
    """Holm over every benchmark compared; the verdict on all benchmarks at once, the question a
    change is asked first, starts with half of alpha (weighted Holm), the benchmarks share the rest.
    A throttled GPU runs the same code slower: its time verdict is not one on the code."""
    family = len(tests.time)
    weights = [float(family - 1) if overall is not None and name == overall.name else 1.0
               for name, _, _ in tests.time]
    for (name, _, _), weight, p_reg, p_imp in zip(
            tests.time, weights, stats.holm([p for _, p, _ in tests.time], weights),
            stats.holm([p for _, _, p in tests.time], weights), strict=True):
        verdict = verdicts[name]
        verdict.p_regression, verdict.p_improvement = p_reg, p_imp
        verdict.time = _time_verdict(verdict, p_reg, p_imp, alpha)
        verdict.note = _why(verdict, alpha, family, tests.smallest[name], sum(weights) / weight)
        if verdict.throttling and verdict.time in (REGRESSION, IMPROVEMENT):
            verdict.note = (f"x{verdict.ratio:.3f} would be a{'n' if verdict.time == IMPROVEMENT else ''} "
                            f"{verdict.time}, but {verdict.throttling}: the GPU's clocks, not necessarily the code")
            verdict.time = INCONCLUSIVE
        elif verdict.throttling:
            verdict.note = "; ".join(filter(None, [verdict.note, verdict.throttling]))
        if verdict.machine_noise:
            verdict.note = "; ".join(filter(None, [verdict.note, verdict.machine_noise]))
    _first_epoch_verdicts(verdicts, tests.first_epoch, alpha)


def _decide(verdicts: dict[str, Verdict], overall: Verdict | None) -> None:
    """Each benchmark's one verdict: a regression in any gated figure, else an improvement, else
    inconclusive, else no change."""
    for verdict in verdicts.values():
        if not verdict.verdict:
            gated = [verdict.time, verdict.metric, verdict.first_epoch]
            verdict.verdict = next((v for v in (REGRESSION, IMPROVEMENT, INCONCLUSIVE) if v in gated), NO_CHANGE)
    if overall is not None:
        overall.verdict = overall.time


def _time_verdict(verdict: Verdict, p_reg: float, p_imp: float, alpha: float) -> str:
    factor = 1 + verdict.thresholds["time"]
    if p_reg < alpha:
        return REGRESSION
    if p_imp < alpha:
        return IMPROVEMENT
    if 1 / factor <= verdict.ratio_low and verdict.ratio_high <= factor:
        return NO_CHANGE
    return INCONCLUSIVE


def _why(verdict: Verdict, alpha: float, family: int, smallest_p: float, divisor: float) -> str:
    """Why an epoch-time verdict is inconclusive, in a sentence. `divisor`: the hypothesis
    starts with alpha / divisor (Holm's first step)."""
    if verdict.time != INCONCLUSIVE:
        return verdict.note
    factor = 1 + verdict.thresholds["time"]
    threshold = f"{verdict.thresholds['time']:.0%}"
    if smallest_p > alpha / divisor:
        return (f"{verdict.candidate_epochs} epochs cannot reach significance over {family} comparisons "
                f"(smallest p {smallest_p:.3g} > {alpha}/{divisor:g}); train more epochs or pool more runs")
    if verdict.ratio_low > factor or verdict.ratio_high < 1 / factor:
        side = "regression" if verdict.ratio_low > factor else "improvement"
        p = verdict.p_regression if side == "regression" else verdict.p_improvement
        return (f"the interval lies beyond +-{threshold}, but after Holm's adjustment over {family} comparisons "
                f"p = {p:.3g} is not below {alpha}: not a significant {side}")
    if verdict.ratio_low > 1 or verdict.ratio_high < 1:  # a change, of a size not yet told from the threshold
        side = "slower" if verdict.ratio_low > 1 else "faster"
        return (f"the interval [{verdict.ratio_low:.3f}, {verdict.ratio_high:.3f}] excludes 1 but reaches past "
                f"+-{threshold}: {side}, but whether by more than {threshold} cannot yet be told")
    return (f"the interval [{verdict.ratio_low:.3f}, {verdict.ratio_high:.3f}] reaches past +-{threshold}: "
            "too few epochs or too much noise to tell a change of that size")


def _first_epoch_verdicts(verdicts: dict[str, Verdict], tests: list[tuple[str, float, float]], alpha: float) -> None:
    """Gate first epochs where the runs can be tested (Holm over those); elsewhere informational."""
    testable = [(name, reg, imp) for name, reg, imp in tests if not math.isnan(reg)]
    adjusted = dict(zip([name for name, _, _ in testable],
                        zip(stats.holm([reg for _, reg, _ in testable]), stats.holm([imp for _, _, imp in testable]),
                            strict=True), strict=True))
    for name, _, _ in tests:
        verdict = verdicts[name]
        if name not in adjusted:
            verdict.first_epoch = INFORMATIONAL
            continue
        reg, imp = adjusted[name]
        factor = 1 + verdict.thresholds["first_epoch"]
        if reg < alpha:
            verdict.first_epoch = REGRESSION
        elif imp < alpha:
            verdict.first_epoch = IMPROVEMENT
        elif 1 / factor <= verdict.first_epoch_ratio <= factor:
            verdict.first_epoch = NO_CHANGE
        else:
            verdict.first_epoch = INCONCLUSIVE


def _overall(pairs: list[tuple[list[float], list[float]]], defaults: Thresholds, alpha: float,
             looks: int, rings: list[list[str]], sessions: Sessions) -> tuple[Verdict, float, float]:
    """The verdict on all interleaved benchmarks at once, before Holm; and its two p-values. The
    session term is folded in: it is shared by every benchmark of a session, so pooling them
    does not shrink it. One of at most `looks` looks: made at the level of one look (`looked`)."""
    epochs = sum(len(b) for b, _ in pairs)
    paired = stats.mean_paired_shift(pairs)
    sessions_count = len({ring for labels in rings for ring in labels})
    test = stats.MeanShiftTest(paired.estimate, math.sqrt(paired.standard_error ** 2
                                                          + sessions.sd ** 2 / sessions_count),
                               paired.degrees_of_freedom)
    log_factor = math.log(1 + defaults.time)
    confidence = 1 - 2 * stats.look_level(alpha, looks)
    low, high = test.interval(confidence)
    shift = stats.Shift(test.estimate, low, high, confidence)
    shift, p_reg, p_imp, method, _ = looked(
        (shift, test.p_greater(log_factor), test.p_less(-log_factor),
         f"interleaved, t-test on the mean of {len(pairs)} benchmarks' paired log differences, "
         f"{sessions.describe(sessions_count)}", 0.0), looks, alpha)
    verdict = Verdict(OVERALL, "", "", "-", "-", ratio=shift.ratio, ratio_low=shift.ratio_low,
                      ratio_high=shift.ratio_high, baseline_epochs=epochs, candidate_epochs=epochs,
                      thresholds={"time": defaults.time}, method=method)
    return verdict, p_reg, p_imp


def run_label(run: Run) -> str:
    return f"{run.path} ({run.label})" if run.label != run.path else run.path


def default_settings() -> GateSettings:
    from fitbench.core.thresholds import ALPHA, DEFAULTS

    return GateSettings(alpha=ALPHA, defaults=DEFAULTS, overrides=[], run_noise="auto", allow_missing=False,
                        compare_software=False, allow_mismatch=False)


def run_noise(runs: Sequence[Run]) -> tuple[float, int]:
    """Run-to-run noise from repeated runs of unchanged code: the pooled sd of each
    benchmark's log median epoch time across the runs, and its degrees of freedom. Only
    benchmarks that measured the same thing in every run count."""
    medians: dict[str, list[float]] = {}
    first: dict[str, Record] = {}
    for run in runs:
        for record in run.records:
            reference = first.setdefault(record.key, record)
            differences = reference.measurement.differences(record.measurement)
            if differences:
                raise ValueError(f"{record.key} measured different things in {run.path}: {differences[0]}; "
                                 "give unchanged runs of one measurement (same profile, options, code)")
            medians.setdefault(record.key, []).append(math.log(record.median_epoch_seconds))
    dof = sum(len(values) - 1 for values in medians.values())
    if dof < 1:
        raise ValueError("measuring run-to-run noise needs 2 or more runs of the same benchmarks")
    squares = sum(sum((m - statistics.fmean(values)) ** 2 for m in values) for values in medians.values())
    return math.sqrt(squares / dof), dof
