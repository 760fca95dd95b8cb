"""One benchmark's result as fitbench reads it back, wherever it comes from: the session in
progress (the runner's extra_info) or pytest-benchmark JSON saved earlier. The terminal
summary, the device comparison, the gate and the report all read results through here.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASELINE_DEVICE = "cpu"


class NotBenchmarkJSON(ValueError):
    """A file that is not pytest-benchmark JSON written by a fitbench run."""


@dataclass
class Row:
    """One benchmark: an experiment's case on one device, and what it measured."""

    experiment: str  # the test function, e.g. "test_batch_size"
    case: str  # its parameters without the device, e.g. "batch_size-512" ("" when none)
    device: str
    name: str = ""  # pytest-benchmark's name, e.g. "test_batch_size[cpu-batch_size-512]"
    group: str | None = None
    workload: str = ""
    profile: str = ""
    device_description: str = ""
    batch_size: int = 0
    train_samples: int = 0
    samples_per_epoch: int = 0
    epochs: int = 0
    schedule_bound: str = ""
    epoch_seconds: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)  # pytest-benchmark's timed rounds, when saved
    accuracy_metric: str | None = None
    accuracy: float | None = None
    accuracy_threshold: float | None = None
    extra_info: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def steady_seconds(self) -> list[float]:
        """Steady-state epoch times: the saved rounds, else epochs 2..N of the runner's clock."""
        return list(self.rounds) or list(self.epoch_seconds[1:])

    @property
    def median_epoch_seconds(self) -> float:
        steady = self.steady_seconds
        return statistics.median(steady) if steady else math.nan

    @property
    def first_epoch_seconds(self) -> float:
        return self.epoch_seconds[0] if self.epoch_seconds else math.nan

    @property
    def samples_per_second(self) -> float:
        return self.samples_per_epoch / self.median_epoch_seconds

    @property
    def seconds_per_sample(self) -> float:
        return self.median_epoch_seconds / self.samples_per_epoch

    @property
    def passed(self) -> bool | None:
        if self.accuracy is None or self.accuracy_threshold is None:
            return None
        return self.accuracy >= self.accuracy_threshold

    @property
    def key(self) -> str:
        """What identifies this benchmark across runs."""
        return self.name or f"{self.experiment}[{'-'.join(p for p in (self.device, self.case) if p)}]"

    @classmethod
    def from_extra_info(cls, info: dict[str, Any], name: str = "", group: str | None = None,
                        rounds: list[float] | None = None) -> Row:
        metric = info.get("accuracy_metric")
        value = info.get(metric) if metric else None
        if isinstance(value, list):  # val_accuracy is per epoch: the check reads the last
            value = value[-1]
        return cls(
            experiment=info.get("experiment", name.split("[")[0]),
            case=info.get("case", ""),
            device=info.get("device", ""),
            name=name,
            group=group,
            workload=info.get("workload", ""),
            profile=info.get("profile", ""),
            device_description=info.get("device_description", ""),
            batch_size=int(info.get("batch_size", 0)),
            train_samples=int(info.get("train_samples", 0)),
            samples_per_epoch=int(info.get("samples_per_epoch", info.get("train_samples", 0))),
            epochs=int(info.get("epochs", 0)),
            schedule_bound=info.get("schedule_bound", ""),
            epoch_seconds=list(info.get("epoch_seconds", [])),
            rounds=list(rounds or []),
            accuracy_metric=metric,
            accuracy=value,
            accuracy_threshold=info.get("accuracy_threshold"),
            extra_info=info,
        )


@dataclass
class Run:
    """One pytest-benchmark JSON file."""

    path: str
    rows: list[Row]
    machine_info: dict[str, Any]
    commit_info: dict[str, Any]
    datetime: str

    @property
    def label(self) -> str:
        commit = (self.commit_info or {}).get("id") or ""
        dirty = "+" if (self.commit_info or {}).get("dirty") else ""
        return f"{Path(self.path).stem} ({commit[:8]}{dirty})" if commit else Path(self.path).stem


def load_run(path: str | os.PathLike) -> Run:
    """Read pytest-benchmark JSON; NotBenchmarkJSON says what is wrong with any other file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise NotBenchmarkJSON(f"{path}: no such file") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotBenchmarkJSON(f"{path}: not JSON ({error}); give a file written by "
                               "pytest --benchmark-json or --benchmark-autosave") from error
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list) \
            or "machine_info" not in document:
        raise NotBenchmarkJSON(f"{path}: JSON, but not pytest-benchmark's (no 'benchmarks' list and "
                               "'machine_info'); give a file written by pytest --benchmark-json or "
                               "--benchmark-autosave")
    rows = []
    for bench in document["benchmarks"]:
        info = bench.get("extra_info") or {}
        if "epoch_seconds" not in info:
            continue  # not a fitbench benchmark (no per-epoch record)
        rows.append(Row.from_extra_info(info, bench.get("name", ""), bench.get("group"),
                                        (bench.get("stats") or {}).get("data")))
    if document["benchmarks"] and not rows:
        raise NotBenchmarkJSON(f"{path}: pytest-benchmark JSON, but none of its benchmarks was "
                               "written by fitbench (no extra_info.epoch_seconds)")
    return Run(str(path), rows, document.get("machine_info") or {}, document.get("commit_info") or {},
               document.get("datetime", ""))


@dataclass(frozen=True)
class Speedup:
    """How much faster `device` trains one sample than `reference` does, for one case."""

    experiment: str
    case: str
    device: str
    reference: str
    ratio: float  # reference seconds per sample / device seconds per sample
    device_seconds_per_sample: float
    reference_seconds_per_sample: float
    same_schedule: bool  # False when one side trained a bounded subset (still per sample)

    def describe(self) -> str:
        case = f" {self.case}" if self.case else ""
        bounded = "" if self.same_schedule else " (bounded schedule on one side; compared per sample)"
        return f"{self.experiment}{case}: {self.device} {self.ratio:.1f}x {self.reference} per sample{bounded}"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def device_speedups(rows: list[Row]) -> list[Speedup]:
    """Every device against the CPU, and TPU against GPU, for each case run on both.

    Per sample: median steady-state epoch seconds / samples trained per epoch, at the same
    global batch size. A bounded CPU run (a subset of the data) takes the same steps as a full
    run, only fewer of them, so its time per sample is what a full epoch would cost per sample.
    """
    by_case: dict[tuple[str, str], dict[str, Row]] = {}
    for row in rows:
        if row.samples_per_epoch and row.steady_seconds:
            by_case.setdefault((row.experiment, row.case), {})[row.device] = row
    pairs = [(device, BASELINE_DEVICE) for device in ("gpu", "tpu")] + [("tpu", "gpu")]
    speedups = []
    for (experiment, case), devices in sorted(by_case.items()):
        for device, reference in pairs:
            if device in devices and reference in devices:
                fast, slow = devices[device], devices[reference]
                speedups.append(Speedup(
                    experiment, case, device, reference,
                    ratio=slow.seconds_per_sample / fast.seconds_per_sample,
                    device_seconds_per_sample=fast.seconds_per_sample,
                    reference_seconds_per_sample=slow.seconds_per_sample,
                    same_schedule=(fast.train_samples, fast.epochs) == (slow.train_samples, slow.epochs),
                ))
    return speedups
