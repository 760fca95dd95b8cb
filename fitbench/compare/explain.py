"""Why is it slower: two sides' profiled steps (`Record.op_profile`, fitbench.measure.opprofile)
compared line by line: each phase (input, input pipeline, optimizer, all-reduce, copies, other)
and each op family (MatMul with its fused forward and its gradients, Conv2D with its backprops,
every other op type on its own; `compute` is their sum and is not a line of its own).

A line's change is the difference of its mean seconds per step, with a Welch interval over the
profiled steps of each side. The lines tested are those that hold at least MIN_SHARE of a step
on either side. One is shown when its interval excludes zero at a family-wise confidence of
1 - ALPHA over the lines tested (Bonferroni) and it moved by at least MIN_SHARE of the
baseline's step and SESSION_NOISE of its own baseline time; lines are ranked in the direction
of the step's own change (by size when the step did not change), and a line's share is that of
the step's change. Nothing shown is said in one line. When the model itself changed (FLOPs per
sample), the step's change is split into more work and time per FLOP.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import t as t_distribution

from fitbench.core.record import Record
from fitbench.measure.opprofile import PIPELINE

ALPHA = 0.10  # the chance that any shown line of one explanation is noise
MIN_SHARE = 0.02  # a line smaller than this share of the baseline's step is not shown
# Nor one that moved by less than this share of its own baseline time: two sessions of the same
# code differ by that much, all steps of one alike (unchanged A/As of a small MLP on the 2-vCPU
# VM: a line moved by -9%, -14% and -12% with intervals that excluded zero; docs/explain.md).
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
    base_steps: int
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

    def text(self) -> list[str]:
        if self.missing:
            return [f"{self.name}: no explanation: {self.missing}"]
        head = (f"{self.name}: step {_ms(self.base_step)} -> {_ms(self.candidate_step)} "
                f"({_ms(self.step_change, signed=True)} [{_ms(self.step_low, signed=True)}, "
                f"{_ms(self.step_high, signed=True)}]; {self.base_steps} + {self.candidate_steps} profiled steps)")
        lines = [head] + ([f"  {self.work}"] if self.work else [])
        if not self.lines:
            lines.append(f"  no phase or op family changed beyond the noise of the profiled steps "
                         f"({self.tested} lines tested, {1 - ALPHA:.0%} family-wise)")
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


def explain(name: str, base: Record, cand: Record) -> Explanation:
    """`base` and `cand`'s profiles compared (see the module docstring)."""
    a, b = base.op_profile or {}, cand.op_profile or {}
    for side, profile in (("baseline", a), ("candidate", b)):
        if not profile:
            return _missing(name, f"the {side} has no profile; run both sides with --explain-steps K "
                                  "(fitbench ab --explain)")
        if profile.get("error"):
            return _missing(name, f"the {side}'s {profile['error']}")
        if profile["steps"] < 2:
            return _missing(name, f"the {side} profiled {profile['steps']} step; at least 2 are needed")
    base_families, cand_families = _families(a["op_types"], a["steps"]), _families(b["op_types"], b["steps"])
    series: dict[str, tuple[list[float], list[float], list[str]]] = {}
    for phase in PHASE_LINES:
        series[_PHASE_LABELS[phase]] = (a["phases"].get(phase, [0.0] * a["steps"]),
                                        b["phases"].get(phase, [0.0] * b["steps"]), [])
    for group in sorted(set(base_families) | set(cand_families)):
        if group.startswith(PIPELINE):
            continue  # in the input pipeline's phase
        base_values, base_members = base_families.get(group, ([0.0] * a["steps"], []))
        cand_values, cand_members = cand_families.get(group, ([0.0] * b["steps"], []))
        members = sorted(set(base_members) | set(cand_members))
        label = f"{group} family ({', '.join(members)})" if group in FAMILIES else group
        series[label] = (base_values, cand_values, members)
    step = difference(a["step_seconds"], b["step_seconds"], 1 - ALPHA)
    base_step = float(np.mean(a["step_seconds"]))
    # Only a line that holds MIN_SHARE of a step on either side can move by that much: the
    # others are not tested, and do not widen the intervals of those that are.
    series = {label: values for label, values in series.items()
              if max(np.mean(values[0]), np.mean(values[1])) >= MIN_SHARE * base_step}
    confidence = 1 - ALPHA / max(1, len(series))
    step_changed = step[1] > 0 or step[2] < 0
    direction = 1.0 if step[0] >= 0 else -1.0
    shown = []
    for label, (base_values, cand_values, members) in series.items():
        change, low, high = difference(base_values, cand_values, confidence)
        if (low <= 0 <= high) or abs(change) < max(MIN_SHARE * base_step,
                                                    SESSION_NOISE * float(np.mean(base_values))):
            continue
        shown.append(Line(label, float(np.mean(base_values)), float(np.mean(cand_values)), change, low, high,
                          change / step[0] if step_changed and step[0] else None,
                          _moved_names(a, b, members) if members else []))
    # In the direction of the step's change when it changed; else the largest moves first.
    shown.sort(key=lambda line: -direction * line.change if step_changed else -abs(line.change))
    cand_step = float(np.mean(b["step_seconds"]))
    return Explanation(name, a["steps"], b["steps"], base_step, cand_step, step[1], step[2], shown, len(series),
                       step[0], _work(base, cand, base_step, cand_step))


_PHASE_LABELS = {
    "input": "input (waiting for the input pipeline)",
    "input pipeline": "input pipeline (the work of tf.data's threads)",
    "optimizer": "optimizer update",
    "all-reduce": "all-reduce",
    "copies": "host-device copies",
    "other": "other (step time outside every op: Python and framework overhead)",
}


def _moved_names(a: dict, b: dict, members: list[str], shown: int = 3) -> list[str]:
    """The profiled ops ('name:Type', each profile's busiest) whose type is in `members`, most
    moved first. An op kept on one side only is left out: the other side may have it below its
    busiest (Keras numbers layers per process, so a renamed layer is a different op too)."""
    moved = []
    for op in set(a["op_names"]) | set(b["op_names"]):
        if op.rpartition(":")[2] not in members:
            continue
        base_values, cand_values = a["op_names"].get(op), b["op_names"].get(op)
        if base_values is None or cand_values is None:
            continue
        moved.append((float(np.mean(cand_values) - np.mean(base_values)), op.rpartition(":")[0]))
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
    order), and what keeps the two sides from being alike (another machine), said, not hidden."""
    from fitbench.compare.gate import environment_differences

    machine, _software = environment_differences(baseline, candidate)
    base = {r.key: r for run in baseline for r in run.records if r.op_profile}
    cand = {r.key: r for run in candidate for r in run.records if r.op_profile}
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
        differences = base[name].measurement.differences(cand[name].measurement)
        if differences:  # a model change is what an explanation explains; anything else is said
            explanations[-1].work = "; ".join(filter(None, [explanations[-1].work,
                                                          "measured differently: " + ", ".join(differences)]))
    notes = [f"another machine: {line}" for line in machine]
    return explanations, notes


def markdown(explanations: Sequence[Explanation], notes: Sequence[str]) -> str:
    """The explanations for a GitHub job summary: one fenced block."""
    body = [*notes, *(line for explanation in explanations for line in explanation.text())]
    return "### Why: the profiled steps, phase by phase and op by op\n\n```\n" + "\n".join(body) + "\n```\n"
