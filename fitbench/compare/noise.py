"""Where a machine's noise comes from: the spread of paired epochs, per measure.

Two sessions of unchanged code that took turns (an A/A `fitbench ab`) differ pair by pair only
by noise. The sd of the log ratio of paired epochs is what a verdict's interval is made of, so
it is the figure to make small. Each epoch's host figures (fitbench.measure.hardware) give
three measures of one epoch:

* wall: the round pytest-benchmark timed, what every verdict is decided on;
* wall minus steal: the epoch less its share of the machine's steal time (steal / CPUs), the
  time a hypervisor gave our vCPUs to another guest;
* CPU time: what this process's threads ran (user + system), blind to waiting of any kind,
  a slower input pipeline's included.

A second measure is reported here, never gated on: it may decide a verdict only once it is
shown to find the regressions wall time finds (docs/gating.md).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fitbench.compare.results import Run
from fitbench.core.record import Epoch, Record
from fitbench.measure import hardware

MEASURES: dict[str, Callable[[Epoch], float | None]] = {
    "wall": lambda epoch: epoch.seconds,
    "wall minus steal": lambda epoch: (
        None if (host := epoch.hardware.get("host") or {}).get("steal_seconds") is None or not host.get("cpus")
        else epoch.seconds - host["steal_seconds"] / host["cpus"]),
    "CPU time": lambda epoch: (epoch.hardware.get("host") or {}).get("cpu_seconds"),
}


@dataclass
class PairSpread:
    """One benchmark's paired epochs: the sd of their log ratio per measure, and the machine's
    shares lost to steal and to other processes (medians over its epochs)."""

    name: str
    pairs: int
    spread: dict[str, float]  # measure -> sd of log(candidate / baseline); NaN when not recorded
    steal: float
    other: float


def _share(epochs: Sequence[Epoch], cause: str) -> float:
    """The median share of the machine the epochs lost to `cause`."""
    return hardware.median_share(epochs, (cause,))


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) >= 2 else math.nan


def pair_spreads(runs: Sequence[Run]) -> list[PairSpread]:
    """Per benchmark, over every ring of two among `runs` (both sides of each, in any order):
    the spread of paired epochs (session 1's over session 0's)."""
    by_ring: dict[tuple[str, str], dict[int, Record]] = {}
    for run in runs:
        for record in run.records:
            if record.interleave and record.interleave.get("size") == 2:
                by_ring.setdefault((record.key, record.interleave["ring"]), {})[record.interleave["index"]] = record
    paired: dict[str, list[tuple[Record, Record]]] = {}
    for (name, _), sessions in by_ring.items():
        if len(sessions) == 2 and len(sessions[0].epochs) == len(sessions[1].epochs):
            paired.setdefault(name, []).append((sessions[0], sessions[1]))
    spreads = []
    for name, records in paired.items():
        epoch_pairs = [(b, c) for base, cand in records for b, c in zip(base.epochs[1:], cand.epochs[1:], strict=True)]
        spread = {}
        for measure, value in MEASURES.items():
            logs = [math.log(vc / vb) for b, c in epoch_pairs
                    if (vb := value(b)) is not None and (vc := value(c)) is not None and vb > 0 and vc > 0]
            spread[measure] = _sd(logs) if len(logs) == len(epoch_pairs) else math.nan
        epochs = [e for pair in epoch_pairs for e in pair]
        spreads.append(PairSpread(name, len(epoch_pairs), spread, _share(epochs, "steal"),
                                  _share(epochs, "other")))
    return spreads


def pooled(spreads: Sequence[PairSpread], measure: str) -> float:
    """The benchmarks' spreads pooled (root mean square weighted by their pairs' degrees of freedom)."""
    usable = [(s.spread[measure], s.pairs - 1) for s in spreads if not math.isnan(s.spread[measure])]
    dof = sum(d for _, d in usable)
    return math.sqrt(sum(sd * sd * d for sd, d in usable) / dof) if dof else math.nan


def table(spreads: Sequence[PairSpread]) -> str:
    """The spreads as a plain-text table, one row a benchmark and one pooled."""
    width = max([len(s.name) for s in spreads] + [len("all (pooled)")])
    header = f"{'benchmark':<{width}}  pairs  " + "  ".join(f"{m:>16}" for m in MEASURES) + "   steal  other busy"
    lines = [header]
    for s in spreads:
        lines.append(f"{s.name:<{width}}  {s.pairs:>5}  " + "  ".join(f"{s.spread[m]:>16.4f}" for m in MEASURES)
                     + f"  {s.steal:>6.1%}  {s.other:>10.1%}")
    lines.append(f"{'all (pooled)':<{width}}  {sum(s.pairs for s in spreads):>5}  "
                 + "  ".join(f"{pooled(spreads, m):>16.4f}" for m in MEASURES))
    return "\n".join(lines)
