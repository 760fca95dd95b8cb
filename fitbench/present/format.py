"""The text fitbench prints or writes of its measurements and comparisons: numbers, the session
summary table, the gate's verdicts (terminal and markdown), device and variant speed-ups, weak
scaling, history's change points. The report's markdown uses the same helpers. Domain objects
return data; what is not rendered here: the record's own one-line facts (fitbench.core.record:
a check, an environment, time to target), the process supervisors' lines about their
sessions and workers (fitbench.processes), the commands' progress lines (fitbench.cli.ab and
fitbench.cli.bisect), and every error message, made where the error is raised."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fitbench.compare import results
from fitbench.compare.gate import INFORMATIONAL, OVERALL, REGRESSION, Comparison, Verdict
from fitbench.compare.results import Speedup, VariantSpeedup, device_speedups, fastest_reaching_target, variant_speedups
from fitbench.core.record import COMPLETED, Record

if TYPE_CHECKING:  # only their fields are read: importing them would import ruptures and scipy
    from fitbench.compare.history import ChangePoint
    from fitbench.compare.scaling import WeakScaling


def number(value: float | None, digits: int) -> str:
    """'-' for a missing or NaN figure, else with `digits` decimals and thousands separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def target_check(record: Record, digits: int = 3) -> str:
    """'0.835>=0.750' (or '0.700< 0.750' when it failed; '45.1<=60.0' for an error metric): value
    and target with the same digits; the status when training did not complete ('diverged')."""
    if record.status != COMPLETED:
        return record.status
    value = record.target_value
    if value is None:
        return "-"
    if record.check is None:
        return number(value, digits)
    goal = record.check.goal
    mark = goal if record.check.passed else ("< " if goal == ">=" else "> ")
    return f"{value:.{digits}f}{mark}{record.check.threshold:.{digits}f}"


def ratio(verdict: Verdict) -> str:
    """'1.213 [1.190, 1.236]': the epoch-time ratio and its interval."""
    if math.isnan(verdict.ratio):
        return "-"
    low = "-inf" if verdict.ratio_low == 0 else f"{verdict.ratio_low:.3f}"
    high = "inf" if math.isinf(verdict.ratio_high) else f"{verdict.ratio_high:.3f}"
    return f"{verdict.ratio:.3f} [{low}, {high}]"


# --- the session summary ----------------------------------------------------------------------

COLUMNS = [  # (title, width, right-aligned)
    ("experiment", 18, False), ("case", 22, False), ("dev", 7, False), ("target", 15, True),
    ("s/epoch", 8, True), ("samples/s", 9, True), ("1st ep s", 8, True), ("to tgt s", 8, True),
    ("eff", 5, True), ("speedup", 7, True),
]
SUMMARY_LEGEND = ("target: the checked metric, its goal (>= or <=) and its target; s/epoch: median of epochs "
                  "2..N; to tgt s: training seconds until the checked metric first met its target (epoch 1 "
                  "included); eff: training FLOP/s over "
                  "this machine's matmul peak in the variant's precision (>100%: the peak is underestimated); "
                  "speedup: per sample vs the cpu "
                  "(devices), per epoch vs the f32 variant of the same case (variants)")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def device_label(record: Record) -> str:
    """'cpu', 'cpux2' (2 replicas in one process), 'cpu/2w' (2 workers of a cluster)."""
    workers, replicas = record.measurement.workers, record.measurement.replicas
    local = replicas // max(workers, 1)
    return record.device + (f"x{local}" if local > 1 else "") + (f"/{workers}w" if workers > 1 else "")


def efficiency(record: Record, peaks: dict | None) -> str:
    """Of the device's peak; 'n/a' when the model's FLOPs are not known (record.flops_unknown)."""
    return "n/a" if record.flops_unknown else percent_of_peak(results.efficiency(record, peaks))


def percent_of_peak(value: float | None, digits: int | None = None) -> str:
    """An efficiency as a percentage; above 100% the measured peak was below what the device
    reached, so no figure is printed, only that mark."""
    if value is None:
        return "-"
    if value > 1:
        return ">100%"
    if digits is None:
        digits = 0 if value >= 0.1 else 1
    smallest = 10 ** -(digits + 2)
    if 0 < value < smallest:  # a tiny model's share of the peak: below the last digit, never a false 0.0%
        return f"<{smallest:.{digits}%}"
    return f"{value:.{digits}%}"


def summary_lines(records: Sequence[Record], speedups: list[Speedup] | None = None,
                  peaks: dict | None = None) -> list[str]:
    """The table's lines (header first), one per record in the order given (the grid's);
    `speedup` is the per-sample speed ratio to the CPU of a device, or the epoch-time ratio of a
    variant to its f32 baseline; `dev` shows replicas when more than one."""
    if not records:
        return []
    speedups = device_speedups(list(records)) if speedups is None else speedups
    ratios = {(s.experiment, s.case, s.device): s.ratio for s in speedups if s.reference == "cpu"}
    ratios.update({(v.experiment, v.case, v.device): v.ratio for v in variant_speedups(list(records))})
    header = " ".join(f"{title:>{w}}" if right else f"{title:<{w}}" for title, w, right in COLUMNS)
    out = [header, "-" * len(header)]
    for record in records:
        speedup = ratios.get((record.experiment, record.case, record.device))
        cells = [
            record.experiment.removeprefix("test_"), record.case or "-", device_label(record), target_check(record),
            number(record.median_epoch_seconds, 3), number(record.samples_per_second, 0),
            number(record.first_epoch_seconds, 2),
            number(record.time_to_target().seconds, 1) if record.check else "",
            efficiency(record, peaks), f"{speedup:.2f}x" if speedup else "",
        ]
        out.append(" ".join(
            f"{_fit(cell, w):>{w}}" if right else f"{_fit(cell, w):<{w}}"
            for cell, (_, w, right) in zip(cells, COLUMNS, strict=True)
        ))
    return out


def variant_lines(records: Sequence[Record]) -> list[str]:
    """Each variant's speed-up over its f32 baseline with the interval, and per case the fastest
    variant that reached its target ([] when the records have no variants)."""
    speedups = variant_speedups(list(records))
    if not speedups:
        return []
    out = ["variants: epoch-time speed-up over the f32 / XLA-off / 1-step / tf.data variant of the same case "
           "(Hodges-Lehmann, 90% interval from epoch pairs: each variant trained in turns with its f32 twin):"]
    for speedup in speedups:
        out.append(f"  {speedup.experiment.removeprefix('test_')} {speedup.case or '-'} on {speedup.device}: "
                   f"{variant_speedup(speedup)}{_target_note(speedup)}")
    for fastest, _group in fastest_reaching_target(list(records)):
        mine = next((s for s in speedups if (s.experiment, s.case, s.device) ==
                     (fastest.experiment, fastest.case, fastest.device)), None)
        ratio = f", {variant_speedup(mine)} over f32" if mine else " (the f32 baseline itself)"
        out.append(f"on this machine: fastest variant that reaches its target, "
                   f"{fastest.experiment.removeprefix('test_')} on {fastest.device} at batch size "
                   f"{fastest.batch_size}: {fastest.case or '-'}{ratio}")
    return out


def _target_note(speedup: VariantSpeedup) -> str:
    return "" if speedup.passed is None else "" if speedup.passed else " (missed its target)"


# --- the gate ---------------------------------------------------------------------------------

def _header(comparison: Comparison) -> list[str]:
    lines = [f"baseline:  {', '.join(comparison.baseline)}", f"candidate: {', '.join(comparison.candidate)}",
             f"machine:   {comparison.environment}"]
    if comparison.software_changes:
        lines.append(f"software:  {'; '.join(comparison.software_changes)} (compared across the change)")
    if comparison.machine_mismatch:
        lines.append(f"WARNING machines differ (--allow-mismatch): {'; '.join(comparison.machine_mismatch)}")
    return lines


def _checks(verdict: Verdict) -> str:
    first = verdict.first_epoch
    first_text = (f"first epoch x{verdict.first_epoch_ratio:.2f} ({first}"
                  + (", not gated" if first == INFORMATIONAL else "") + ")")
    efficiency = ""
    if verdict.baseline_efficiency is not None and verdict.candidate_efficiency is not None:
        both = (verdict.baseline_efficiency, verdict.candidate_efficiency)
        under = " (above 100%: that machine's measured peak is underestimated)" if max(both) > 1 else ""
        efficiency = (f", efficiency {percent_of_peak(both[0], 1)} -> {percent_of_peak(both[1], 1)} of each "
                      f"machine's peak (secondary, not gated){under}")
    return f"{verdict.metric_name or 'metric'} {verdict.metric}, {first_text}{efficiency}"


def _code_note(verdict: Verdict) -> str:
    return f"; the model changed: {', '.join(verdict.code_changes)}" if verdict.code_changes else ""


def verdict_lines(comparison: Comparison) -> list[str]:
    """The terminal form: a header naming baseline and candidate, then a line per benchmark
    in the grid's order, the counts, and the verdict on all benchmarks when there is one."""
    lines = _header(comparison)
    for v in comparison.verdicts:
        if v.method:
            text = (f"epoch time x{ratio(v)} ({v.time}; {v.method}), {_checks(v)}"
                    + (f"; {v.note}" if v.note else "") + _code_note(v))
        else:
            text = v.note
        lines.append(f"{v.verdict.upper():<12} {v.name}: {text}")
    counts = comparison.counts()
    lines.append(", ".join(f"{n} {k}" for k, n in counts.items() if n))
    if comparison.overall:
        overall = comparison.overall
        lines.append(f"{overall.verdict.upper():<12} {OVERALL}: epoch time x{ratio(overall)} ({overall.method})")
    return lines


def verdict_markdown(comparison: Comparison) -> str:
    """A summary for a CI job (GitHub's $GITHUB_STEP_SUMMARY) or a pull request comment."""
    counts = comparison.counts()
    level = round(100 * (1 - 2 * comparison.alpha))
    lines = [
        "## fitbench gate", "",
        f"Baseline: {', '.join(f'`{p}`' for p in comparison.baseline)}  ",
        f"Candidate: {', '.join(f'`{p}`' for p in comparison.candidate)}  ",
        f"Machine: {comparison.environment}  ",
        *([f"Software: {'; '.join(comparison.software_changes)}  "] if comparison.software_changes else []),
        "",
        "**" + ", ".join(f"{n} {k}" for k, n in counts.items() if n) + "**", "",
        *([f"Epoch time of {OVERALL}: **{comparison.overall.verdict}**, ratio {ratio(comparison.overall)} "
           f"({comparison.overall.method})", ""] if comparison.overall else []),
        f"| benchmark | verdict | epoch time ratio [{level}% CI] | time | checked metric (base → cand) | "
        "first epoch ratio | thresholds (time, metric, 1st) |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in comparison.verdicts:
        acc = ("-" if v.baseline_metric is None or v.candidate_metric is None
               else f"{v.metric_name} {v.baseline_metric:.4f} → {v.candidate_metric:.4f} ({v.metric})")
        first = "-" if math.isnan(v.first_epoch_ratio) else f"{v.first_epoch_ratio:.2f} ({v.first_epoch})"
        t = v.thresholds
        limits = f"{t.get('time', 0):.0%}, {t.get('metric', 0):g}, {t.get('first_epoch', 0):.0%}" if t else "-"
        verdict = f"**{v.verdict}**" if v in comparison.failures else v.verdict
        lines.append(f"| `{v.name}` | {verdict} | {ratio(v)} | {v.time} | {acc} | {first} | {limits} |")
    notes = [f"- `{v.name}`: {v.note}{_code_note(v)}".replace(": ; ", ": ") for v in comparison.verdicts
             if v.note or v.code_changes]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def failure_lines(comparison: Comparison) -> list[str]:
    """'FAILED (gate) name: regression (...)' for each benchmark that fails the gate."""
    return [f"FAILED (gate) {v.name}: {v.verdict}"
            + (f" (time {v.time}, metric {v.metric}, first epoch {v.first_epoch})"
               if v.verdict == REGRESSION and v.method else f" ({v.note})")
            for v in comparison.failures]


def device_speedup(speedup: Speedup) -> str:
    """'batch_size batch_size-32: gpu 12.3x cpu per sample'."""
    case = f" {speedup.case}" if speedup.case else ""
    bounded = "" if speedup.same_schedule else " (bounded schedule on one side; compared per sample)"
    return f"{speedup.experiment}{case}: {speedup.device} {speedup.ratio:.1f}x {speedup.reference} per sample{bounded}"


def variant_speedup(speedup: VariantSpeedup) -> str:
    """'1.42x [1.30, 1.55]', or why there is no interval; 'unpaired' when the tests ran apart."""
    how = "" if speedup.paired else ", unpaired: tests run apart"
    if speedup.low <= 0 or math.isinf(speedup.high):
        return f"{speedup.ratio:.2f}x (too few timed epochs for a 90% interval{how})"
    return f"{speedup.ratio:.2f}x [{speedup.low:.2f}, {speedup.high:.2f}]" + (f" ({how[2:]})" if how else "")


def weak_scaling(figure: WeakScaling) -> str:
    interval = (f"[{figure.low:.0%}, {figure.high:.0%}]" if math.isfinite(figure.high) and figure.low > 0
                else "(too few timed epochs for a 90% interval)")
    return (f"{figure.name}: {figure.workers} workers {figure.many_samples_per_second:,.0f} samples/s, 1 worker "
            f"{figure.one_samples_per_second:,.0f}: weak-scaling efficiency {figure.efficiency:.0%} {interval} "
            f"({figure.method})")


def change_point(change: ChangePoint) -> str:
    """One line: the step, what changed across it (software, metric, what the ratios to the
    reference did) and, indented under it, the machine's state on each side."""
    why = "".join(f"; {part}" for part in (", ".join(change.software), change.metric, change.drift) if part)
    machine = f"\n{'':<13}machine {change.machine}" if change.machine else ""
    return (f"{change.verdict.upper():<12} {change.name}: {change.measure} x{change.ratio:.3f} [{change.low:.3f}, "
            f"{change.high:.3f}] between {change.before.label} and {change.after.label} "
            f"({change.runs_before} runs before, {change.runs_after} after; t-test p = {change.p_value:.2g})"
            f"{why}{machine}")
