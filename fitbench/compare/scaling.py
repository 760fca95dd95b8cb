"""Weak-scaling efficiency: what N workers buy over one, with the gate's interval.

Weak scaling keeps each worker's work fixed: the N-worker run trains with N times the global
batch (the same batch per worker, ``--batch-per-worker``), so an epoch of the same samples
takes N times fewer steps, each worker computing as much per step as the lone worker does.
Its efficiency is the N workers' samples per second over N times the one worker's: 1 when the
collectives cost nothing, 1/N when N workers are no faster than one. Two records are paired
only when they measured the same thing but for the cluster (workers, replicas, global batch)
with the same batch per replica and the same cores per worker. The interval is the gate's:
epoch pairs by turn when the two runs took turns (`fitbench workers N --scaling`), else the
unpaired Hodges-Lehmann interval of the steady epochs.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fitbench.compare.gate import interleaved_pairs
from fitbench.compare.results import write_atomically
from fitbench.core import run_info, stats
from fitbench.core.record import Record

CLUSTER_FIELDS = ("workers", "cluster", "replicas", "global_batch")
CONFIDENCE = 0.90



@dataclass(frozen=True)
class WeakScaling:
    name: str  # the benchmark (pytest's name)
    workers: int
    one_samples_per_second: float
    many_samples_per_second: float
    efficiency: float
    low: float
    high: float
    method: str
    metric_one: float | None
    metric_many: float | None

    def as_dict(self) -> dict[str, Any]:
        return {key: (None if isinstance(value, float) and not math.isfinite(value) else value)
                for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, figure: dict[str, Any]) -> WeakScaling:
        known = {key: figure.get(key) for key in cls.__dataclass_fields__}
        return cls(**{**known, "high": math.inf if known["high"] is None else known["high"]})


def _identity(record: Record) -> str:
    return record.measurement.key(but=CLUSTER_FIELDS, keep=("cluster.cores_per_worker",))


def weak_scaling(one: list[Record], many: list[Record]) -> list[WeakScaling]:
    """Each benchmark of the N-worker run against the same benchmark of the 1-worker run."""
    singles = {(r.name, _identity(r)): r for r in one if r.measurement.workers == 1 and r.steady_seconds}
    out = []
    for record in many:
        single = singles.get((record.name, _identity(record)))
        workers = record.measurement.workers
        if single is None or workers < 2 or not record.steady_seconds:
            continue
        pairs = interleaved_pairs([single], [record])
        if pairs is not None:
            shift, method = stats.paired_log_shift(*pairs, CONFIDENCE), f"interleaved, {len(pairs[0])} epoch pairs"
        else:
            shift, method = stats.log_shift(single.steady_seconds, record.steady_seconds, CONFIDENCE), "unpaired epochs"
        # Samples per second of N over N x one's: (S_N / t_N) / (N S_1 / t_1), t_N / t_1 = shift.
        samples = record.samples_per_epoch / single.samples_per_epoch / workers
        out.append(WeakScaling(
            record.name, workers, single.samples_per_second, record.samples_per_second,
            efficiency=samples / shift.ratio, low=samples / shift.ratio_high,
            high=samples / shift.ratio_low if shift.ratio_low > 0 else math.inf, method=method,
            metric_one=single.target_value, metric_many=record.target_value))
    return out


def unpaired(one: list[Record], many: list[Record]) -> list[str]:
    """One line per N-worker benchmark that has no 1-worker counterpart measuring the same thing."""
    found = {scaling.name for scaling in weak_scaling(one, many)}
    lines = []
    for record in many:
        if record.name in found:
            continue
        same_name = [r for r in one if r.name == record.name]
        why = ("not in the 1-worker run" if not same_name else
               "; ".join(same_name[0].measurement.differences(record.measurement)[:3]) or "no timed epochs")
        lines.append(f"{record.name}: no weak-scaling figure ({why})")
    return lines


def write(path: Path, measured: list[WeakScaling]) -> None:
    """Store the figures in the N-worker run's JSON (fitbench section), where the report reads them."""
    document = json.loads(Path(path).read_text())
    run_info.update(document, scaling=[scaling.as_dict() for scaling in measured])
    write_atomically(Path(path), json.dumps(document, indent=4))
