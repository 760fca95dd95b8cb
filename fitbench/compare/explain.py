"""Why is it slower: two sides' profiled steps (`Record.op_profile`, fitbench.measure.opprofile)
compared line by line: each phase (input, input pipeline, optimizer, all-reduce, copies, other)
and each op family (MatMul with its fused forward and its gradients, Conv2D with its backprops,
every other op type on its own; `compute` is their sum and is not a line of its own).

A line's change is the difference of its mean seconds per step. Its interval depends on how many
sessions profiled it. With two or more a side (`fitbench ab --explain` profiles every round), it
is a two-sample t interval over the sessions' means: a session's own speed (which moves all of its
steps alike, by up to 29% for one op in unchanged A/As; docs/explain.md) is then in the interval.
With one session a side, it is a Welch interval over the profiled steps, which cannot see that,
and a line must also move by SESSION_NOISE of its own baseline time. The lines tested are those
that hold at least MIN_SHARE of a step on either side. One is shown when its interval excludes
zero at a family-wise confidence of 1 - ALPHA over the lines tested (Bonferroni) and it moved by
at least MIN_SHARE of the baseline's step; lines are ranked in the direction of the step's own
change (by size when the step did not change), and a line's share is that of the step's change.
Nothing shown is said in one line. When the model itself changed (FLOPs per sample), the step's
change is split into more work and time per FLOP.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import t as t_distribution

from fitbench.core import stats
from fitbench.core.record import Record
from fitbench.measure.opprofile import PIPELINE

ALPHA = 0.10  # the chance that any shown line of one explanation is noise
MIN_SHARE = 0.02  # a line smaller than this share of the baseline's step is not shown
# With one session a side, nor one that moved by less than this share of its own baseline time:
# two sessions of the same code differ by that much, all steps of one alike (unchanged A/As of a
# small MLP on the 2-vCPU VM: a line moved by -9%, -14% and -12% with intervals that excluded
# zero; docs/explain.md). With more sessions, their spread is measured instead.
SESSION_NOISE = 0.15
PHASE_LINES = ("input", "input pipeline", "optimizer", "all-reduce", "copies", "other")
# Op types that are one computation: the forward kernel, its fused forms and its gradients.
FAMILIES = {
    "MatMul": ("MatMul", "_FusedMatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"),
    "Conv2D": ("Conv2D", "_FusedConv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter",
               "DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput",
               "DepthwiseConv2dNativeBackpropFilter"),
}
_FAMILY_OF = {op_type: family for family, members in FAMILIES.items() for op_type in members}


class ExplainError(ValueError):
    """Two records cannot be explained against each other; the message says why and what to do."""


@dataclass
class Line:
    """One phase or op family: its mean seconds per step on each side and the change."""

    what: str  # "MatMul family (MatMul, _FusedMatMul)", "input (waiting for data)"
    base_seconds: float
    candidate_seconds: float
    change: float  # candidate - baseline, seconds per step
    low: float
    high: float
    share: float | None  # of the step's change (None when the step did not change)
    names: list[str] = field(default_factory=list)  # the op names that moved most, with their change

    def describe(self, step_change: float | None) -> str:
        relative = (f" ({self.change / self.base_seconds:+.0%})" if self.base_seconds > 0 else " (new)")
        change = "slowdown" if (step_change or 0) > 0 else "speed-up"
        share = "" if self.share is None else f": {self.share:.0%} of the {change}"
        names = f"; {', '.join(self.names)}" if self.names else ""
        return (f"{self.what} {_ms(self.change, signed=True)}/step{relative} "
                f"[{_ms(self.low, signed=True)}, {_ms(self.high, signed=True)}]{share}{names}")


@dataclass
class Explanation:
    """One benchmark's two profiles compared."""

    name: str
    base_steps: int  # profiled steps, all sessions
    candidate_steps: int
    base_step: float  # mean seconds per step
    candidate_step: float
    step_low: float  # the step's change, interval
    step_high: float
    lines: list[Line]  # shown, ranked
    tested: int  # lines tested
    step_change: float = math.nan  # candidate - baseline, mean seconds per step
    work: str = ""  # the model's work changed: "more work: FLOPs per sample x1.20; time per FLOP x0.98"
    missing: str = ""  # why there is no explanation (no profile on a side, a profile error)
    base_sessions: int = 1  # sessions that profiled the steps, each side
    candidate_sessions: int = 1

    @property
    def between_sessions(self) -> bool:
        """The intervals hold the spread between sessions (two or more a side)."""
        return min(self.base_sessions, self.candidate_sessions) >= 2

    def text(self) -> list[str]:
        if self.missing:
            return [f"{self.name}: no explanation: {self.missing}"]
        sessions = (f"{self.base_sessions} + {self.candidate_sessions} sessions, "
                    if self.base_sessions > 1 or self.candidate_sessions > 1 else "")
        head = (f"{self.name}: step {_ms(self.base_step)} -> {_ms(self.candidate_step)} "
                f"({_ms(self.step_change, signed=True)} [{_ms(self.step_low, signed=True)}, "
                f"{_ms(self.step_high, signed=True)}]; {sessions}{self.base_steps} + {self.candidate_steps} "
                "profiled steps)")
        lines = [head] + ([f"  {self.work}"] if self.work else [])
        if not self.lines:
            noise = ("their spread between sessions" if self.between_sessions else
                     f"the noise of the profiled steps (one session a side: a line must also move by "
                     f"{SESSION_NOISE:.0%} of its own time)")
            lines.append(f"  no phase or op family changed beyond {noise} ({self.tested} lines tested, "
                         f"{1 - ALPHA:.0%} family-wise)")
        step_change = self.step_change if self.step_low > 0 or self.step_high < 0 else None
        lines += [f"  {line.describe(step_change)}" for line in self.lines]
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text()}


def _ms(seconds: float, signed: bool = False) -> str:
    value = seconds * 1e3
    return f"{value:+.3g} ms" if signed else f"{value:.3g} ms"


def difference(base: Sequence[float], cand: Sequence[float], confidence: float) -> tuple[float, float, float]:
    """Candidate minus baseline: the difference of mean seconds per step and its Welch t
    interval. Means, not a median shift: the input pipeline's work is bursty (a step's window
    holds several batches' work or none), and on 12 planted runs (docs/explain.md) a
    Hodges-Lehmann shift missed it once where the means named it every time."""
    a, b = np.asarray(base, float), np.asarray(cand, float)
    change = float(b.mean() - a.mean())
    variance = a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)
    if variance <= 0:
        return change, change, change
    dof = variance ** 2 / ((a.var(ddof=1) / len(a)) ** 2 / (len(a) - 1) + (b.var(ddof=1) / len(b)) ** 2 / (len(b) - 1))
    half = float(t_distribution.ppf(0.5 + confidence / 2, dof) * math.sqrt(variance))
    return change, change - half, change + half


def session_difference(base: Sequence[Sequence[float]], cand: Sequence[Sequence[float]],
                       confidence: float) -> tuple[float, float, float]:
    """Candidate minus baseline from each side's sessions (each a list of seconds per step): with
    two or more sessions a side, the difference of the means of the sessions' means, with a
    pooled two-sample t interval over those means (J_a + J_b - 2 degrees of freedom), so that a
    session's own speed is part of the noise; with one session a side, `difference` over steps."""
    if min(len(base), len(cand)) < 2:
        return difference([v for s in base for v in s], [v for s in cand for v in s], confidence)
    test = stats.pooled_shift([np.mean(session) for session in base], [np.mean(session) for session in cand])
    return (test.estimate, *test.interval(confidence))


def family(op_type: str) -> str:
    """The family of an op type; oneDNN's rewrites of the same kernels on CPUs (`_MklMatMul`,
    `_MklNativeFusedMatMul`, `_MklNativeConv2DBackpropFilter`, ...) belong to the op they rewrite."""
    if op_type in _FAMILY_OF:
        return _FAMILY_OF[op_type]
    rewritten = re.sub(r"^_Mkl(Native)?", "", op_type)
    return _FAMILY_OF.get(rewritten, _FAMILY_OF.get("_" + rewritten, op_type))


def _families(op_types: dict[str, list[float]], steps: int) -> dict[str, tuple[list[float], list[str]]]:
    grouped: dict[str, tuple[list[float], list[str]]] = {}
    for op_type, values in op_types.items():
        total, members = grouped.setdefault(family(op_type), ([0.0] * steps, []))
        for index, value in enumerate(values):
            total[index] += value
        members.append(op_type)
    return grouped


def _lines(profile: dict) -> dict[str, tuple[list[float], list[str]]]:
    """One session's profile as its lines: label -> (seconds per step, the op types in it)."""
    steps = profile["steps"]
    lines = {_PHASE_LABELS[phase]: (profile["phases"].get(phase, [0.0] * steps), []) for phase in PHASE_LINES}
    for group, (values, members) in _families(profile["op_types"], steps).items():
        if not group.startswith(PIPELINE):  # in the input pipeline's phase
            lines[group] = (values, members)
    return lines


def _profiles(name: str, side: str, records: Sequence[Record]) -> tuple[list[dict], str]:
    """The sessions' usable profiles of one side, or why there is none."""
    usable, problems = [], []
    for record in records:
        profile = record.op_profile or {}
        if not profile:
            problems.append(f"the {side} has no profile; run both sides with --explain-steps K (fitbench ab --explain)")
        elif profile.get("error"):
            problems.append(f"the {side}'s {profile['error']}")
        elif profile["steps"] < 2:
            problems.append(f"the {side} profiled {profile['steps']} step; at least 2 are needed")
        else:
            usable.append(profile)
    return usable, ("" if usable else problems[0] if problems else f"the {side} has no profile of {name}")


def explain(name: str, base: Record | Sequence[Record], cand: Record | Sequence[Record]) -> Explanation:
    """The profiles of `base`'s and `cand`'s sessions (one record each, or several of the same
    benchmark) compared; see the module docstring."""
    base_records = [base] if isinstance(base, Record) else list(base)
    cand_records = [cand] if isinstance(cand, Record) else list(cand)
    a, missing = _profiles(name, "baseline", base_records)
    b, missing_b = _profiles(name, "candidate", cand_records)
    if missing or missing_b:
        return _missing(name, missing or missing_b)
    base_lines, cand_lines = [_lines(p) for p in a], [_lines(p) for p in b]
    labels = list(_PHASE_LABELS[phase] for phase in PHASE_LINES)
    labels += sorted({label for lines in base_lines + cand_lines for label in lines} - set(labels))
    series: dict[str, tuple[list[list[float]], list[list[float]], list[str]]] = {}
    for label in labels:
        members = sorted({m for lines in base_lines + cand_lines if label in lines for m in lines[label][1]})
        sides = [[lines.get(label, ([0.0] * p["steps"], []))[0] for lines, p in zip(side, profiles, strict=True)]
                 for side, profiles in ((base_lines, a), (cand_lines, b))]
        series[f"{label} family ({', '.join(members)})" if label in FAMILIES else label] = (*sides, members)
    step = session_difference([p["step_seconds"] for p in a], [p["step_seconds"] for p in b], 1 - ALPHA)
    base_step = _mean(p["step_seconds"] for p in a)
    cand_step = _mean(p["step_seconds"] for p in b)
    between = min(len(a), len(b)) >= 2
    # Only a line that holds MIN_SHARE of a step on either side can move by that much: the
    # others are not tested, and do not widen the intervals of those that are.
    series = {label: values for label, values in series.items()
              if max(_mean(values[0]), _mean(values[1])) >= MIN_SHARE * base_step}
    confidence = 1 - ALPHA / max(1, len(series))
    step_changed = step[1] > 0 or step[2] < 0
    direction = 1.0 if step[0] >= 0 else -1.0
    shown = []
    for label, (base_values, cand_values, members) in series.items():
        change, low, high = session_difference(base_values, cand_values, confidence)
        floor = MIN_SHARE * base_step if between else max(MIN_SHARE * base_step, SESSION_NOISE * _mean(base_values))
        if (low <= 0 <= high) or abs(change) < floor:
            continue
        shown.append(Line(label, _mean(base_values), _mean(cand_values), change, low, high,
                          change / step[0] if step_changed and step[0] else None,
                          _moved_names(a, b, members) if members else []))
    # In the direction of the step's change when it changed; else the largest moves first.
    shown.sort(key=lambda line: -direction * line.change if step_changed else -abs(line.change))
    return Explanation(name, sum(p["steps"] for p in a), sum(p["steps"] for p in b), base_step, cand_step,
                       step[1], step[2], shown, len(series), step[0],
                       _work(base_records[0], cand_records[0], base_step, cand_step),
                       base_sessions=len(a), candidate_sessions=len(b))


def _mean(sessions: Iterable[Sequence[float]]) -> float:
    """Seconds per step over sessions: the mean of the sessions' means (each session counts once)."""
    return float(np.mean([np.mean(values) for values in sessions]))


_PHASE_LABELS = {
    "input": "input (waiting for the input pipeline)",
    "input pipeline": "input pipeline (the work of tf.data's threads)",
    "optimizer": "optimizer update",
    "all-reduce": "all-reduce",
    "copies": "host-device copies",
    "other": "other (step time outside every op: Python and framework overhead)",
}


def _moved_names(a: Sequence[dict], b: Sequence[dict], members: list[str], shown: int = 3) -> list[str]:
    """The profiled ops ('name:Type', each profile's busiest) whose type is in `members`, most
    moved first (means of the sessions that kept them). An op kept on one side only is left out:
    the other side may have it below its busiest (Keras numbers layers per process, so a renamed
    layer is a different op too)."""
    moved = []
    for op in {op for profile in [*a, *b] for op in profile["op_names"]}:
        if op.rpartition(":")[2] not in members:
            continue
        base_values = [p["op_names"][op] for p in a if op in p["op_names"]]
        cand_values = [p["op_names"][op] for p in b if op in p["op_names"]]
        if not base_values or not cand_values:
            continue
        moved.append((_mean(cand_values) - _mean(base_values), op.rpartition(":")[0]))
    moved.sort(key=lambda item: -abs(item[0]))
    return [f"{op_name} {_ms(change, signed=True)}" for change, op_name in moved[:shown] if change]


def _work(base: Record, cand: Record, base_step: float, cand_step: float) -> str:
    """When the model's work changed: the step's change split into work and time per FLOP."""
    before, after = base.flops_per_sample, cand.flops_per_sample
    if not (before and after) or before == after:
        return ""
    work = after / before
    speed = (cand_step / base_step) / work if base_step > 0 else math.nan
    return (f"{'more' if work > 1 else 'less'} work: FLOPs per sample x{work:.2f} "
            f"({before:,} -> {after:,}); time per FLOP x{speed:.2f}")


def _missing(name: str, why: str) -> Explanation:
    return Explanation(name, 0, 0, math.nan, math.nan, math.nan, math.nan, [], 0, missing=why)


def explain_runs(baseline: Sequence[Any], candidate: Sequence[Any]) -> tuple[list[Explanation], list[str]]:
    """Every benchmark of both sides that has a profile on either, explained (in the baseline's
    order; each run one session, several runs of a side pooled), and what keeps the two sides
    from being alike (another machine), said, not hidden."""
    from fitbench.compare.gate import environment_differences

    machine, _software = environment_differences(baseline, candidate)
    base: dict[str, list[Record]] = {}
    cand: dict[str, list[Record]] = {}
    for runs, sessions in ((baseline, base), (candidate, cand)):
        for run in runs:
            for record in run.records:
                if record.op_profile:
                    sessions.setdefault(record.key, []).append(record)
    names = [name for name in base if name in cand] + [name for name in base if name not in cand] \
        + [name for name in cand if name not in base]
    if not names:
        raise ExplainError("no benchmark of these runs was profiled; run both sides with --explain-steps K "
                           "(or fitbench ab --explain)")
    explanations = []
    for name in names:
        if name not in cand or name not in base:
            side = "candidate" if name not in cand else "baseline"
            explanations.append(_missing(name, f"the {side} has no profile of it"))
            continue
        explanations.append(explain(name, base[name], cand[name]))
        differences = base[name][0].measurement.differences(cand[name][0].measurement)
        if differences:  # a model change is what an explanation explains; anything else is said
            explanations[-1].work = "; ".join(filter(None, [explanations[-1].work,
                                                          "measured differently: " + ", ".join(differences)]))
    notes = [f"another machine: {line}" for line in machine]
    return explanations, notes


def markdown(explanations: Sequence[Explanation], notes: Sequence[str]) -> str:
    """The explanations for a GitHub job summary: one fenced block."""
    body = [*notes, *(line for explanation in explanations for line in explanation.text())]
    return "### Why: the profiled steps, phase by phase and op by op\n\n```\n" + "\n".join(body) + "\n```\n"
