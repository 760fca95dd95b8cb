"""Runs read back: pytest-benchmark JSON files whose benchmarks carry fitbench records.

The session summary, the device comparison, the gate and the report all read results as
`Record`s (fitbench.record), from the session in progress or from a file loaded here. A file
is checked before anything uses it: a benchmark whose figures cannot be measurements (NaN,
zero or negative epoch times, NaN accuracy) or whose record has an unknown schema is refused
with the file and the benchmark named.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fitbench.record import Environment, Record, RecordError

BASELINE_DEVICE = "cpu"


class NotBenchmarkJSON(ValueError):
    """A file that cannot be read as a fitbench run (the message names the file and the fix)."""


@dataclass
class Run:
    """One pytest-benchmark JSON file (or the session in progress)."""

    path: str
    records: list[Record]
    machine_info: dict[str, Any]
    commit_info: dict[str, Any] = field(default_factory=dict)
    datetime: str = ""
    fitbench: dict[str, Any] = field(default_factory=dict)  # the run's own section (profile, ...)

    @property
    def partial(self) -> bool:
        """The session was interrupted or killed: the file holds the benchmarks that finished."""
        return bool(self.fitbench.get("partial"))

    @property
    def environment(self) -> Environment:
        return Environment.from_machine_info(self.machine_info)

    @property
    def number(self) -> str:
        """pytest-benchmark's saved-run counter ('0003' of 0003_abc_....json), else ''."""
        match = re.match(r"(\d{4})_", Path(self.path).name)
        return match.group(1) if match else ""

    @property
    def label(self) -> str:
        """'0003 3f2a9c1d 2026-11-23 14:05': run number (or file name), short commit, date."""
        commit = (self.commit_info or {}).get("id") or ""
        dirty = "+" if (self.commit_info or {}).get("dirty") else ""
        parts = [self.number or Path(self.path).stem, f"{commit[:8]}{dirty}" if commit else "",
                 self.datetime[:16].replace("T", " "), "(partial)" if self.partial else ""]
        return " ".join(part for part in parts if part)


def load_run(path: str | os.PathLike) -> Run:
    """Read and check pytest-benchmark JSON; NotBenchmarkJSON says what is wrong with it."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise NotBenchmarkJSON(f"{path}: no such file") from error
    except PermissionError as error:
        raise NotBenchmarkJSON(f"{path}: permission denied") from error
    except IsADirectoryError as error:
        raise NotBenchmarkJSON(f"{path}: is a directory; give a JSON file") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotBenchmarkJSON(f"{path}: not JSON ({error}); give a file written by "
                               "pytest --benchmark-json or --benchmark-autosave") from error
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list) \
            or "machine_info" not in document:
        raise NotBenchmarkJSON(f"{path}: JSON, but not pytest-benchmark's (no 'benchmarks' list and "
                               "'machine_info'); give a file written by pytest --benchmark-json or "
                               "--benchmark-autosave")
    records = []
    fitbench = document.get("fitbench") if isinstance(document.get("fitbench"), dict) else {}
    # Tests that ended before a timed round (a divergence in epoch 1) have no pytest-benchmark entry.
    for bench in [*document["benchmarks"], *(fitbench.get("records_without_rounds") or [])]:
        info = (bench.get("extra_info") or {}) if isinstance(bench, dict) else {}
        name = bench.get("name", "?") if isinstance(bench, dict) else "?"
        if "fitbench_schema" not in info and "epoch_seconds" not in info:
            continue  # not a fitbench benchmark
        try:
            record = Record.from_json(info, name, bench.get("group"), bench.get("params"))
        except RecordError as error:
            raise NotBenchmarkJSON(f"{path}: benchmark {name}: {error}") from error
        problems = record.problems()
        if problems:
            raise NotBenchmarkJSON(f"{path}: benchmark {name}: " + "; ".join(problems)
                                   + " (a damaged or hand-edited file; re-run the benchmark)")
        records.append(record)
    if document["benchmarks"] and not records:
        raise NotBenchmarkJSON(f"{path}: pytest-benchmark JSON, but none of its benchmarks was "
                               "written by fitbench (no fitbench record in extra_info)")
    return Run(str(path), records, document.get("machine_info") or {}, document.get("commit_info") or {},
               document.get("datetime", ""), fitbench)


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


def device_speedups(rows: list[Record]) -> list[Speedup]:
    """Every device against the CPU, and TPU against GPU, for each case run on both.

    Per sample: median steady-state epoch seconds / samples trained per epoch, at the same
    global batch size. A bounded CPU run (a subset of the data) takes the same steps as a full
    run, only fewer of them, so its time per sample is what a full epoch would cost per sample.
    """
    by_case: dict[tuple[str, ...], dict[str, Record]] = {}
    for row in rows:
        if row.samples_per_epoch and row.steady_seconds:
            # Only the device (and what follows from it: replicas, a bounded schedule) may differ.
            same = (row.experiment, row.case, row.profile, json.dumps(row.measurement.workload, sort_keys=True),
                    json.dumps(row.measurement.variant, sort_keys=True), str(row.batch_size))
            by_case.setdefault(same, {})[row.device] = row
    pairs = [(device, BASELINE_DEVICE) for device in ("gpu", "tpu")] + [("tpu", "gpu")]
    speedups = []
    for (experiment, case, *_), devices in sorted(by_case.items()):
        for device, reference in pairs:
            if device in devices and reference in devices:
                fast, slow = devices[device], devices[reference]
                speedups.append(Speedup(
                    experiment, case, device, reference,
                    ratio=slow.seconds_per_sample / fast.seconds_per_sample,
                    device_seconds_per_sample=fast.seconds_per_sample,
                    reference_seconds_per_sample=slow.seconds_per_sample,
                    same_schedule=fast.measurement.schedule == slow.measurement.schedule,
                ))
    return speedups
