"""The regression gate: compare a candidate run with a baseline, benchmark by benchmark.

Three things are gated, each with its own direction and threshold:

* steady-state epoch time (slower is worse): a *regression* needs the slowdown to be larger
  than the threshold (default 5%) *and* significant: a one-sided test that the candidate is
  slower than the baseline x (1 + threshold), with Holm's adjustment over every benchmark
  compared, so the chance of any false alarm in a run stays at alpha. When runs do not drift
  the test is Mann-Whitney's on the epochs; on a machine where a whole run can be 10-20%
  slower than the next (a shared VM), epochs of one run are not independent of each other,
  so the unit becomes the run: a t-test on log run medians with the run-to-run noise either
  given (measured once by A/A runs: `tests/gate_trust.py`) or estimated from 3+ runs.
  Best of all, the two runs take turns on the machine (`fitbench interleave`): epoch k of the
  baseline and epoch k of the candidate then ran seconds apart, so the drift cancels in each
  pair and the test is Wilcoxon's signed-rank on the pairs.
  *improvement* is the mirror image. *no change* needs the (1 - 2 alpha) interval of the
  ratio inside +-threshold (an equivalence test); anything else is *inconclusive*: too few
  rounds or too much noise to tell at that size. For interleaved runs one more verdict covers
  all benchmarks at once: the geometric mean of their ratios (a t-test on the mean of the
  benchmarks' mean paired log differences), in the same Holm family; it answers "is training
  slower overall" with far narrower bounds than any one benchmark can.
* accuracy (lower is worse): a drop of more than the threshold (default 0.02, two points)
  in the accuracy the test asserts. Training is seeded: on one machine the value repeats.
* first-epoch time (tracing/compilation; slower is worse): one value per run, so a ratio
  against a wide threshold (default 100%: twice as slow), without statistics.

A benchmark's thresholds come from its `@pytest.mark.gate(time=..., accuracy=...,
first_epoch=...)` marker (saved in extra_info), else from a thresholds file (glob on the
benchmark's name or group), else the defaults. Runs are compared only when their machine
fingerprints agree (versions, CPU model, GPUs; not clock speed).
"""

from __future__ import annotations

import fnmatch
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fitbench import stats
from fitbench.results import NotBenchmarkJSON, Row, Run, load_run

REGRESSION, IMPROVEMENT, NO_CHANGE, INCONCLUSIVE, MISSING = (
    "regression", "improvement", "no change", "inconclusive", "missing")
# What a comparison is allowed to depend on; clock speeds and load are left out on purpose.
FINGERPRINT_KEYS = ("system", "machine", "python", "cpu_name", "gpus", "tensorflow", "keras",
                    "cuda_version", "cudnn_version")


@dataclass(frozen=True)
class Thresholds:
    time: float = 0.05  # relative slowdown of the steady-state epoch
    accuracy: float = 0.02  # absolute drop in accuracy (0.02 = 2 points)
    # Relative slowdown of epoch 1 (tracing): one value a run, so no statistics, and tracing
    # time is bimodal: A/A on a 2-vCPU VM gave ratios up to 1.9x (50% cried wolf on 15%).
    first_epoch: float = 1.0

    def but(self, values: dict[str, float]) -> Thresholds:
        unknown = set(values) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown gate threshold {', '.join(sorted(unknown))}: "
                             f"use {', '.join(asdict(self))}")
        return Thresholds(**{**asdict(self), **{k: float(v) for k, v in values.items()}})


class MachineMismatch(ValueError):
    """The runs come from machines or software that should not be compared."""


@dataclass
class Verdict:
    name: str
    verdict: str  # overall: the worst of the three below
    time: str
    accuracy: str
    first_epoch: str
    ratio: float = math.nan  # candidate / baseline median-shift estimate of epoch time
    ratio_low: float = math.nan
    ratio_high: float = math.nan
    p_regression: float = math.nan  # Holm-adjusted
    p_improvement: float = math.nan
    baseline_epochs: int = 0
    candidate_epochs: int = 0
    baseline_accuracy: float | None = None
    candidate_accuracy: float | None = None
    first_epoch_ratio: float = math.nan
    thresholds: dict[str, float] = field(default_factory=dict)
    method: str = ""  # which test decided the epoch-time verdict
    note: str = ""


@dataclass
class Comparison:
    baseline: list[str]
    candidate: list[str]
    alpha: float
    verdicts: list[Verdict]
    fingerprint: dict[str, Any]
    mismatch: list[str]
    # Interleaved runs only: epoch time of all benchmarks at once (geometric mean of the ratios).
    overall: Verdict | None = None

    @property
    def regressions(self) -> list[Verdict]:
        every = [*self.verdicts, *([self.overall] if self.overall else [])]
        return [v for v in every if v.verdict == REGRESSION]

    def counts(self) -> dict[str, int]:
        """How many benchmarks got each verdict (the overall verdict is not counted)."""
        names = (REGRESSION, IMPROVEMENT, NO_CHANGE, INCONCLUSIVE, MISSING)
        return {name: sum(v.verdict == name for v in self.verdicts) for name in names}

    def as_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "candidate": self.candidate, "alpha": self.alpha,
                "counts": self.counts(), "fingerprint": self.fingerprint, "machine_mismatch": self.mismatch,
                "overall": asdict(self.overall) if self.overall else None,
                "verdicts": [asdict(v) for v in self.verdicts]}


def fingerprint(machine_info: dict[str, Any]) -> dict[str, Any]:
    return {key: machine_info.get(key) for key in FINGERPRINT_KEYS}


def mismatches(runs_a: Sequence[Run], runs_b: Sequence[Run]) -> list[str]:
    """'key: a != b' for each fingerprint field on which any two runs disagree."""
    prints = [(run.path, fingerprint(run.machine_info)) for run in [*runs_a, *runs_b]]
    first_path, first = prints[0]
    problems = []
    for path, other in prints[1:]:
        for key in FINGERPRINT_KEYS:
            if other[key] != first[key]:
                problems.append(f"{key}: {first[key]!r} ({Path(first_path).name}) != "
                                f"{other[key]!r} ({Path(path).name})")
    return problems


def load_thresholds(path: str | None) -> list[tuple[str, dict[str, float]]]:
    """A JSON object {glob on benchmark name or group: {time, accuracy, first_epoch}}."""
    if not path:
        return []
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read gate thresholds ({error}); expected JSON like "
                         '{"test_fashion_cnn*": {"time": 0.10}}') from error
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise ValueError(f"{path}: expected a JSON object of glob -> {{time, accuracy, first_epoch}}")
    for values in document.values():
        Thresholds().but(values)  # validates the names
    return list(document.items())


def thresholds_for(row: Row, defaults: Thresholds, overrides: list[tuple[str, dict[str, float]]]) -> Thresholds:
    chosen = defaults
    for pattern, values in overrides:
        if fnmatch.fnmatchcase(row.key, pattern) or (row.group and fnmatch.fnmatchcase(row.group, pattern)):
            chosen = chosen.but(values)
    return chosen.but(row.extra_info.get("gate") or {})  # the benchmark's own marker wins


def _pool(runs: Sequence[Run]) -> dict[str, list[Row]]:
    pooled: dict[str, list[Row]] = {}
    for run in runs:
        for row in run.rows:
            pooled.setdefault(row.key, []).append(row)
    return pooled


def _accuracy(rows: list[Row]) -> float | None:
    values = [r.accuracy if r.accuracy is not None else r.extra_info.get("test_accuracy") for r in rows]
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def interleaved_pairs(base: list[Row], cand: list[Row]) -> tuple[list[float], list[float]] | None:
    """The steady epochs of one baseline and one candidate run that took turns in one ring,
    paired epoch by epoch, when every pair ran within one trip of the token; else None."""
    if len(base) != 1 or len(cand) != 1:
        return None
    (b, c), rings = (base[0], cand[0]), (base[0].extra_info.get("interleave"), cand[0].extra_info.get("interleave"))
    if not all(rings) or rings[0]["ring"] != rings[1]["ring"] or rings[0]["index"] == rings[1]["index"]:
        return None
    turns_b, turns_c = b.extra_info.get("epoch_turns", [])[1:], c.extra_info.get("epoch_turns", [])[1:]
    seconds_b, seconds_c = b.steady_seconds, c.steady_seconds
    if not len(seconds_b) == len(seconds_c) == len(turns_b) == len(turns_c) or None in turns_b + turns_c:
        return None
    if any(abs(tb - tc) >= rings[0]["size"] for tb, tc in zip(turns_b, turns_c, strict=True)):
        return None
    return seconds_b, seconds_c


def _epoch_time_test(base: list[Row], cand: list[Row], pairs: tuple[list[float], list[float]] | None,
                     limits: Thresholds, alpha: float,
                     run_noise: float | str) -> tuple[stats.Shift, float, float, str]:
    """(interval of the ratio, p of a regression, p of an improvement, method) for one benchmark.

    Interleaved runs (`pairs`, from `interleaved_pairs`) are compared pair by pair. Otherwise
    epochs are the unit when whole runs do not drift (run_noise 0, or one run a side under
    'auto'); else run medians are: with the run-to-run noise given, or estimated from the runs
    (3 or more).
    """
    factor, confidence = 1 + limits.time, 1 - 2 * alpha
    if pairs is not None:
        base_epochs, cand_epochs = pairs
        return (stats.paired_log_shift(base_epochs, cand_epochs, confidence),
                stats.paired_p_greater(base_epochs, cand_epochs, factor),
                stats.paired_p_greater(cand_epochs, base_epochs, factor),
                f"interleaved, signed-rank on {len(base_epochs)} pairs")
    base_runs = [r.steady_seconds for r in base]
    cand_runs = [r.steady_seconds for r in cand]
    several = len(base_runs) + len(cand_runs) >= 3
    if run_noise == 0 or (run_noise == "auto" and not several):
        base_epochs = [s for run in base_runs for s in run]
        cand_epochs = [s for run in cand_runs for s in run]
        shift = stats.log_shift(base_epochs, cand_epochs, confidence)
        return (shift, stats.p_greater(base_epochs, cand_epochs, factor),
                stats.p_greater(cand_epochs, base_epochs, factor), "epochs, Mann-Whitney")
    noise = None if run_noise == "auto" else float(run_noise)
    test = stats.run_level(base_runs, cand_runs, noise)
    low, high = test.interval(confidence)
    method = (f"run medians, {len(base_runs)} vs {len(cand_runs)} runs, "
              + ("noise estimated" if noise is None else f"run noise {noise:.3f}"))
    return (stats.Shift(test.estimate, low, high, confidence), test.p_greater(math.log(factor)),
            test.p_less(-math.log(factor)), method)


def compare(baseline: Sequence[Run], candidate: Sequence[Run], alpha: float = 0.05,
            defaults: Thresholds = Thresholds(), overrides: list | None = None,
            allow_mismatch: bool = False, run_noise: float | str = "auto") -> Comparison:
    """Verdicts for every benchmark of the candidate runs against the baseline runs.

    `run_noise` is the sd of a run's log median epoch time from one run to the next on this
    machine (0: runs do not drift, compare epochs; 'auto': estimate it when there are 3 runs
    or more, else compare epochs)."""
    problems = mismatches(baseline, candidate)
    if problems and not allow_mismatch:
        raise MachineMismatch(
            "refusing to compare runs from different machines or software:\n  " + "\n  ".join(problems)
            + "\ncompare runs of the same machine, or pass --allow-mismatch (--gate-allow-mismatch in "
            "pytest) to compare anyway")
    base_rows, cand_rows = _pool(baseline), _pool(candidate)
    names = sorted(cand_rows)
    verdicts: dict[str, Verdict] = {}
    tests = []  # (name, p_regression, p_improvement)
    paired = {}  # name -> (baseline epochs, candidate epochs) of interleaved runs
    for name in names:
        cand = cand_rows[name]
        limits = thresholds_for(cand[0], defaults, overrides or [])
        if name not in base_rows:
            verdicts[name] = Verdict(name, MISSING, MISSING, MISSING, MISSING, thresholds=asdict(limits),
                                     note="not in the baseline")
            continue
        base = base_rows[name]
        base_epochs = sum(len(r.steady_seconds) for r in base)
        cand_epochs = sum(len(r.steady_seconds) for r in cand)
        pairs = interleaved_pairs(base, cand)
        shift, p_reg, p_imp, method = _epoch_time_test(base, cand, pairs, limits, alpha, run_noise)
        tests.append((name, p_reg, p_imp))
        if pairs is not None:
            paired[name] = pairs

        base_acc, cand_acc = _accuracy(base), _accuracy(cand)
        if base_acc is None or cand_acc is None:
            accuracy = INCONCLUSIVE
        elif cand_acc < base_acc - limits.accuracy:
            accuracy = REGRESSION
        elif cand_acc > base_acc + limits.accuracy:
            accuracy = IMPROVEMENT
        else:
            accuracy = NO_CHANGE

        first_ratio = (statistics.fmean(r.first_epoch_seconds for r in cand)
                       / statistics.fmean(r.first_epoch_seconds for r in base))
        first = (REGRESSION if first_ratio > 1 + limits.first_epoch
                 else IMPROVEMENT if first_ratio < 1 / (1 + limits.first_epoch) else NO_CHANGE)
        note = ""
        if method.startswith("epochs") and run_noise == "auto":
            note = ("one run a side: assumes runs do not drift as a whole; on a shared machine give "
                    "--run-noise (measure it with fitbench noise) or 3+ runs")
        if method.startswith("epochs") and \
                stats.smallest_p(cand_epochs, base_epochs) > alpha / max(1, len(names)):
            note = (f"{base_epochs} vs {cand_epochs} epochs cannot reach significance over "
                    f"{len(names)} benchmarks; train more epochs or pool more runs")
        if pairs is not None and stats.smallest_paired_p(cand_epochs) > alpha / max(1, len(names)):
            note = (f"{cand_epochs} pairs cannot reach significance over {len(names)} benchmarks; "
                    "train more epochs")
        verdicts[name] = Verdict(
            name, "", "", accuracy, first, ratio=shift.ratio, ratio_low=shift.ratio_low,
            ratio_high=shift.ratio_high, baseline_epochs=base_epochs, candidate_epochs=cand_epochs,
            baseline_accuracy=base_acc, candidate_accuracy=cand_acc, first_epoch_ratio=first_ratio,
            thresholds=asdict(limits), method=method, note=note)

    overall = None
    if len(paired) >= 2 and len(paired) == len(tests):
        overall, p_reg, p_imp = _overall(list(paired.values()), defaults, alpha)
        verdicts[overall.name] = overall
        tests.append((overall.name, p_reg, p_imp))

    adjusted_reg = stats.holm([p for _, p, _ in tests])
    adjusted_imp = stats.holm([p for _, _, p in tests])
    for (name, _, _), p_reg, p_imp in zip(tests, adjusted_reg, adjusted_imp, strict=True):
        verdict = verdicts[name]
        verdict.p_regression, verdict.p_improvement = p_reg, p_imp
        factor = 1 + verdict.thresholds["time"]
        if p_reg < alpha:
            verdict.time = REGRESSION
        elif p_imp < alpha:
            verdict.time = IMPROVEMENT
        elif 1 / factor <= verdict.ratio_low and verdict.ratio_high <= factor:
            verdict.time = NO_CHANGE
        else:
            verdict.time = INCONCLUSIVE
    for verdict in verdicts.values():
        if verdict.verdict != MISSING:
            parts = (verdict.time, verdict.accuracy, verdict.first_epoch)
            verdict.verdict = next((v for v in (REGRESSION, IMPROVEMENT, INCONCLUSIVE) if v in parts), NO_CHANGE)
    return Comparison([r.path for r in baseline], [r.path for r in candidate], alpha,
                      [verdicts[n] for n in names], fingerprint(candidate[0].machine_info), problems,
                      overall)


OVERALL = "all benchmarks (geometric mean)"


def _overall(pairs: list[tuple[list[float], list[float]]], defaults: Thresholds,
             alpha: float) -> tuple[Verdict, float, float]:
    """The verdict on all interleaved benchmarks at once, before Holm; and its two p-values."""
    test = stats.mean_paired_shift(pairs)
    log_factor = math.log(1 + defaults.time)
    low, high = test.interval(1 - 2 * alpha)
    epochs = sum(len(b) for b, _ in pairs)
    verdict = Verdict(OVERALL, "", "", "-", "-", ratio=math.exp(test.estimate), ratio_low=math.exp(low),
                      ratio_high=math.exp(high), baseline_epochs=epochs, candidate_epochs=epochs,
                      thresholds={"time": defaults.time},
                      method=f"interleaved, t-test on the mean of {len(pairs)} benchmarks' paired log differences")
    return verdict, test.p_greater(log_factor), test.p_less(-log_factor)


def _ratio(verdict: Verdict) -> str:
    if math.isnan(verdict.ratio):
        return "-"
    low = "-inf" if verdict.ratio_low == 0 else f"{verdict.ratio_low:.3f}"
    high = "inf" if math.isinf(verdict.ratio_high) else f"{verdict.ratio_high:.3f}"
    return f"{verdict.ratio:.3f} [{low}, {high}]"


def markdown(comparison: Comparison) -> str:
    """A summary for a CI job (GitHub's $GITHUB_STEP_SUMMARY) or a pull request comment."""
    counts = comparison.counts()
    level = round(100 * (1 - 2 * comparison.alpha))
    lines = [
        "## fitbench gate",
        "",
        f"Baseline: {', '.join(f'`{p}`' for p in comparison.baseline)}  ",
        f"Candidate: {', '.join(f'`{p}`' for p in comparison.candidate)}  ",
        f"Machine: {comparison.fingerprint.get('cpu_name')}; GPUs {comparison.fingerprint.get('gpus') or 'none'}; "
        f"TensorFlow {comparison.fingerprint.get('tensorflow')}, Keras {comparison.fingerprint.get('keras')}",
        "",
        "**" + ", ".join(f"{n} {k}" for k, n in counts.items() if n) + "**",
        "",
        *([f"Epoch time of {OVERALL}: **{comparison.overall.verdict}**, ratio {_ratio(comparison.overall)} "
           f"({comparison.overall.method})", ""] if comparison.overall else []),
        f"| benchmark | verdict | epoch time ratio [{level}% CI] | time | accuracy (base → cand) | "
        "first epoch ratio | thresholds (time, acc, 1st) |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in comparison.verdicts:
        acc = ("-" if v.baseline_accuracy is None or v.candidate_accuracy is None
               else f"{v.baseline_accuracy:.4f} → {v.candidate_accuracy:.4f} ({v.accuracy})")
        first = "-" if math.isnan(v.first_epoch_ratio) else f"{v.first_epoch_ratio:.2f} ({v.first_epoch})"
        t = v.thresholds
        limits = f"{t.get('time', 0):.0%}, {t.get('accuracy', 0):.2f}, {t.get('first_epoch', 0):.0%}" if t else "-"
        verdict = f"**{v.verdict}**" if v.verdict == REGRESSION else v.verdict
        lines.append(f"| `{v.name}` | {verdict} | {_ratio(v)} | {v.time} | {acc} | {first} | {limits} |")
    notes = [f"- `{v.name}`: {v.note}" for v in comparison.verdicts if v.note]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def terminal_lines(comparison: Comparison) -> list[str]:
    lines = []
    for v in comparison.verdicts:
        lines.append(f"{v.verdict.upper():<12} {v.name}: epoch time x{_ratio(v)} ({v.time}; {v.method}), "
                     f"accuracy {v.accuracy}, first epoch {v.first_epoch}"
                     + (f"; {v.note}" if v.note else ""))
    counts = comparison.counts()
    lines.append(", ".join(f"{n} {k}" for k, n in counts.items() if n))
    if comparison.overall:
        overall = comparison.overall
        lines.append(f"{overall.verdict.upper():<12} {OVERALL}: epoch time x{_ratio(overall)} ({overall.method})")
    return lines


def run_noise(runs: Sequence[Run]) -> tuple[float, int]:
    """Run-to-run noise from repeated runs of unchanged code: the pooled sd of each
    benchmark's log median epoch time across the runs, and its degrees of freedom."""
    medians: dict[str, list[float]] = {}
    for run in runs:
        for row in run.rows:
            medians.setdefault(row.key, []).append(math.log(statistics.median(row.steady_seconds)))
    dof = sum(len(values) - 1 for values in medians.values())
    if dof < 1:
        raise ValueError("measuring run-to-run noise needs 2 or more runs of the same benchmarks")
    squares = sum(sum((m - statistics.fmean(values)) ** 2 for m in values) for values in medians.values())
    return math.sqrt(squares / dof), dof


def parse_run_noise(text: str) -> float | str:
    """'auto' or a non-negative number (the sd of a run's log median epoch time)."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ValueError(f"run noise {text!r}: give 'auto' or a number >= 0 such as 0.08 (8% from run to run)")
    return value


# --- inside pytest: --gate BASELINE ---------------------------------------------------------

def configure(config) -> None:
    config.fitbench_gate = None


def session_run(config) -> Run:
    """The session's own results as a Run (the runner's per-epoch clock; no JSON needed)."""
    from fitbench import devices

    return Run("this session", list(config.fitbench_rows), devices.machine_info(), {}, "")


def evaluate(config) -> bool:
    """Gate the session against --gate; True when a benchmark regressed (or the gate errs)."""
    paths = config.getoption("gate") or []
    if not paths or not config.fitbench_rows or hasattr(config, "workerinput"):
        return False  # xdist workers hold part of the rows; the controller gates them all
    try:
        baseline = [load_run(path) for path in paths]
        config.fitbench_gate = compare(
            baseline, [session_run(config)], alpha=config.getoption("gate_alpha"),
            overrides=load_thresholds(config.getoption("gate_thresholds")),
            allow_mismatch=config.getoption("gate_allow_mismatch"),
            run_noise=parse_run_noise(config.getoption("gate_run_noise")))
    except (NotBenchmarkJSON, MachineMismatch, ValueError) as error:
        config.fitbench_gate = error
        return True
    return bool(config.fitbench_gate.regressions)


def report(config, write: Callable[[str], None], terminalreporter) -> None:
    outcome = config.fitbench_gate
    if outcome is None:
        return
    failed = isinstance(outcome, Exception) or bool(outcome.regressions)
    terminalreporter.section("fitbench gate", red=failed, bold=failed)
    if isinstance(outcome, Exception):
        write(f"ERROR: the gate could not run: {outcome}")
        return
    write(f"baseline {', '.join(outcome.baseline)}; alpha {outcome.alpha} (Holm over {len(outcome.verdicts)})")
    for line in terminal_lines(outcome):
        write(line)
    for verdict in outcome.regressions:
        write(f"FAILED (gate) {verdict.name}: {verdict.verdict} (time {verdict.time}, "
              f"accuracy {verdict.accuracy}, first epoch {verdict.first_epoch})")
