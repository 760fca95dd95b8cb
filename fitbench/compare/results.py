"""Runs read back: pytest-benchmark JSON files whose benchmarks carry fitbench records.

The session summary, the device comparison, the gate and the report all read results as
`Record`s (fitbench.core.record), from the session in progress or from a file loaded here. A file
is checked before anything uses it: a benchmark whose figures cannot be measurements (NaN,
zero or negative epoch times, a NaN metric) or whose record has an unknown schema is refused
with the file and the benchmark named.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fitbench.core import stats
from fitbench.core.record import DEFAULT_VARIANT, Environment, Record, RecordError
from fitbench.core.run_info import RunInfo, RunInfoError
from fitbench.measure.workloads import Variant

BASELINE_DEVICE = "cpu"
# What may differ between two devices' records of one case: the device and what follows from it.
DEVICE_FIELDS = ("device", "replicas", "per_replica_batch", "schedule", "workers", "cluster")


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
    info: RunInfo = field(default_factory=RunInfo)  # the run's own section (profile, peaks, ...)

    @property
    def partial(self) -> bool:
        """The session was interrupted or killed: the file holds the benchmarks that finished."""
        return self.info.partial

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
    try:
        run_info = RunInfo.from_json(document)
    except RunInfoError as error:
        raise NotBenchmarkJSON(f"{path}: {error}") from error
    # Tests that ended before a timed round (a divergence in epoch 1) have no pytest-benchmark entry.
    for bench in [*document["benchmarks"], *run_info.records_without_rounds]:
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
               document.get("datetime", ""), run_info)



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
            same = (row.experiment, row.case, row.measurement.key(but=DEVICE_FIELDS))
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



@dataclass(frozen=True)
class VariantSpeedup:
    """How much faster a training variant runs an epoch than the default variant (float32, no
    XLA, 1 step per execution, tf.data) of the same measurement otherwise, with the gate's
    interval: the Hodges-Lehmann ratio of the steady-state epochs and its 90% confidence."""

    experiment: str
    case: str  # the variant's own case
    baseline_case: str
    device: str
    variant: str  # its label: 'bf16-xla-spe32'
    ratio: float  # baseline seconds / variant seconds (> 1: faster)
    low: float
    high: float
    passed: bool | None  # its target check (None: none made)
    # True: the variant and its reference took turns epoch by epoch in one test (paired
    # epochs); False: two tests that ran apart, whose drift the interval does not contain.
    paired: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "high": None if math.isinf(self.high) else self.high}


def variant_label(variant: dict[str, Any]) -> str:
    return Variant(**{key: variant[key] for key in DEFAULT_VARIANT if key in variant}).label


def variant_speedups(records: list[Record]) -> list[VariantSpeedup]:
    """Each non-default variant against the default variant of the same measurement: its own
    reference when it trained in turns with one (paired epochs, `Record.reference`), else the
    default variant's record among `records` (one run; the last of a measurement measured twice)."""
    baselines = {r.measurement.key(but=("variant",)): r for r in records
                 if r.variant == DEFAULT_VARIANT and len(r.steady_seconds) >= 1}
    out = []
    for record in records:
        if record.variant == DEFAULT_VARIANT or not record.steady_seconds:
            continue
        reference = record.reference or {}
        reference_seconds = (reference.get("epoch_seconds") or [])[1:]
        base = baselines.get(record.measurement.key(but=("variant",)))
        if reference.get("variant") == DEFAULT_VARIANT and len(reference_seconds) == len(record.steady_seconds):
            shift, paired = stats.paired_log_shift(reference_seconds, record.steady_seconds), True
            if math.isinf(shift.high) and len(reference_seconds) >= 2:
                # Too few pairs for the signed-rank interval (fewer than 5): the paired t interval.
                test = stats.mean_paired_shift([(reference_seconds, record.steady_seconds)])
                shift = stats.Shift(test.estimate, *test.interval(0.90), 0.90)
        elif base is not None:
            shift, paired = stats.log_shift(base.steady_seconds, record.steady_seconds), False
        else:
            continue
        base_case = base.case if base is not None else "its f32 twin"
        out.append(VariantSpeedup(
            record.experiment, record.case, base_case, record.device, variant_label(record.variant),
            ratio=1 / shift.ratio, low=1 / shift.ratio_high, high=1 / shift.ratio_low if shift.ratio_low else math.inf,
            passed=None if record.check is None else record.check.passed, paired=paired,
        ))
    return out


def fastest_reaching_target(records: list[Record]) -> list[tuple[Record, list[Record]]]:
    """For each measurement with variants: the variant (default included) that ran fastest and
    passed its target check, and the group it was chosen from. Fastest by the paired speed-up
    over f32 when every variant of the group has one (the f32 variant itself: 1), else by
    median epoch."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(record.measurement.key(but=("variant",)), []).append(record)
    paired = {id(record): speedup for record in records for speedup in variant_speedups([record])
              if speedup.paired}
    out = []
    for group in groups.values():
        if len(group) < 2:
            continue
        passed = [r for r in group if r.check is not None and r.check.passed and r.steady_seconds]
        if not passed:
            continue
        if all(id(r) in paired for r in group if r.variant != DEFAULT_VARIANT):
            fastest = max(passed, key=lambda r: paired[id(r)].ratio if id(r) in paired else 1.0)
        else:
            fastest = min(passed, key=lambda r: r.median_epoch_seconds)
        out.append((fastest, group))
    return out


# In the run's fitbench section, not in machine_info: pytest-benchmark compares machine_info
# for equality on every --benchmark-compare, and a re-measured peak is never bit-equal.


def efficiency(record: Record, measured: dict[str, dict[str, float]] | None) -> float | None:
    """Model FLOPs utilisation: achieved training GFLOP/s over the device's peak in the
    variant's precision (None when that peak was not measured, no epoch was timed, or the
    model's FLOPs are not known). A cluster's over its workers' peaks, each worker's measured
    as the chief's."""
    peak = ((measured or {}).get(record.device) or {}).get(record.variant.get("precision", "float32"))
    if not peak or not record.steady_seconds or not record.flops_per_sample \
            or not math.isfinite(record.gflops_per_second):
        return None  # no peak, no epoch timed, or FLOPs not known (record.flops_unknown)
    return record.gflops_per_second / (peak * record.measurement.workers)


def write_atomically(path: Path, text: str, exclusive: bool = False) -> None:
    """Write `text` to `path` so that a reader (or a kill) sees the old file or the new one, whole.
    `exclusive`: never over another file; FileExistsError when `path` exists (another session
    took that name first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes the file 0600; a result is readable like any file the user writes (umask).
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(descriptor, 0o666 & ~umask)
        with os.fdopen(descriptor, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if exclusive:
            os.link(temporary, path)  # fails if the name exists, where a rename would replace it
            os.unlink(temporary)
        else:
            os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
