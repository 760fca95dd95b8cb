"""The helpers fitbench's own tests share (test modules import them from here, never from
conftest.py or from one another): synthetic IDX datasets, pytest sessions and `fitbench` commands
started as processes, throwaway git checkouts, records and runs with chosen figures, and a
stand-in for pytest-benchmark's fixture."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fitbench.measure.experiments import load_module
from fitbench.measure.workloads import Schedule
from fixtures.datasets import DIRECTORY_NAMES, IDX_FILES

ROOT = Path(__file__).resolve().parent.parent
# The pytest sessions these tests start share one pytest cache, as a user's sessions share
# theirs: the matmul peak (7 s on a 2-vCPU VM) is then measured once per machine fingerprint,
# not in every session. They use nothing else of a cache (no --lf, no --sw).
SHARED_CACHE = ("-o", f"cache_dir={Path(tempfile.gettempdir()) / f'fitbench-tests-cache-{os.getuid()}'}")


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """The IDX encoding of `array`: magic (0, type, ndim), big-endian dimensions, data."""
    header = struct.pack(">HBB", 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def synthetic_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 images: class k lights up row block k, over uniform noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    images = rng.integers(0, 60, size=(count, 28, 28)).astype(np.uint8)
    for k in range(10):
        images[labels == k, 2 * k + 4 : 2 * k + 6, 4:24] = 250
    return images, labels


def write_dataset(root: Path, name: str, train: int = 6000, test: int = 1000) -> Path:
    directory = root / DIRECTORY_NAMES[name]
    x_train, y_train = synthetic_images(train, seed=1)
    x_test, y_test = synthetic_images(test, seed=2)
    for key, array in {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}.items():
        write_idx(directory / IDX_FILES[key], array)
    return directory


def run_pytest(*args: str, env: dict[str, str] | None = None, timeout: int = 600,
               isolate: bool = False) -> subprocess.CompletedProcess:
    """Run a separate pytest session from the project root (real config, real plugins).
    `isolate`: train in a worker process, as a benchmark session does by default; else in the
    session's own process (--no-isolate), which saves each session the worker's start-up
    (about 5 s): crash isolation has its own tests (test_isolation.py, test_outside.py)."""
    # Without the outer session's pytest/xdist variables: under `pytest -n`, an inherited
    # PYTEST_XDIST_WORKER makes the inner pytest-benchmark disable itself.
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *SHARED_CACHE, *([] if isolate else ["--no-isolate"]), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**clean, **(env or {})},
    )


def throwaway_checkout(destination: Path) -> Path:
    """The files a benchmark session needs, copied from this checkout into a git repository of
    their own with one commit on `main` (and origin/main pointing at it): for `fitbench ab`."""
    for name in ("fitbench", "fixtures", "tests/sample", "tests/plugins"):
        shutil.copytree(ROOT / name, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "conftest.py", "tests/__init__.py"):
        shutil.copy(ROOT / name, destination / name)
    for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"],
                    ["update-ref", "refs/remotes/origin/main", "HEAD"]):
        subprocess.run(["git", *command], cwd=destination, check=True, capture_output=True)
    return destination


def make_record(name: str, device: str = "cpu", epoch_seconds: list[float] | None = None, samples: int = 1000,
                accuracy: float = 0.85, threshold: float | None = 0.8, profile: str = "smoke",
                batch_size: int = 32, replicas: int = 1, case: str = "", epochs: int | None = None):
    """A Record as the runner would make it, with chosen figures (for summary, report and gate tests)."""
    from fitbench.core.record import Check, Epoch, Measurement, Record

    seconds = epoch_seconds or [2.0, 1.0, 1.0, 1.0]
    measurement = Measurement(
        workload={"name": name.split("[")[0], "dataset": "fashion_mnist", "model": "mlp", "optimizer": {"name": "SGD"},
                  "metric": "accuracy", "goal": ">="},
        schedule={"epochs": epochs or len(seconds), "train_samples": samples, "samples_per_epoch": samples,
                  "bound": ""},
        profile=profile, device=device, replicas=replicas, global_batch=batch_size,
        per_replica_batch=batch_size // replicas)
    record = Record(measurement, [Epoch(s, 1.0, 0.5, 1.0, accuracy) for s in seconds], test_metric=accuracy,
                    name=name, case=case)
    if threshold is not None:
        record.check = Check("test", "accuracy", ">=", threshold, accuracy)
    return record


MACHINE = {"system": "Linux", "machine": "x86_64", "python": "3.11.7", "cpu_name": "Test CPU", "gpus": [],
           "tensorflow": "2.21.0", "keras": "3.15.1", "cpu": {"hz_actual": [2_100_000_000, 0]}}


def benchmark(name, epochs, accuracy=0.85, gate_marker=None, group="g", profile="smoke", replicas=1):
    record = make_record(name, epoch_seconds=list(epochs), accuracy=accuracy, profile=profile, replicas=replicas)
    record.gate = gate_marker or {}
    return {"name": name, "group": group, "params": {"device": "cpu"}, "stats": {"data": list(epochs[1:])},
            "extra_info": record.to_json()}


def write(path, benchmarks, machine=None, date="2026-11-23T00:00:00"):
    path.write_text(json.dumps({"machine_info": {**MACHINE, **(machine or {})}, "commit_info": {"id": "abc"},
                                "datetime": date, "benchmarks": benchmarks}))
    return str(path)


def runs(tmp_path, base_benchmarks, cand_benchmarks, **machine):
    return (write(tmp_path / "base.json", base_benchmarks),
            write(tmp_path / "cand.json", cand_benchmarks, machine or None))


def interleaved_runs(tmp_path, scale, names=("t[a]", "t[b]", "t[c]"), seed=0, ring="r1"):
    """A baseline and a candidate that took turns in one ring, on a machine whose speed
    drifts by 20% from epoch to epoch (shared by the two epochs of a pair)."""
    rng = np.random.default_rng(seed)
    base, cand = [], []
    for name in names:
        drift = rng.lognormal(0, 0.20, 11)
        b = [2.0, *(drift * rng.lognormal(0, 0.01, 11))]
        c = [2.0, *(scale * drift * rng.lognormal(0, 0.01, 11))]
        for benchmarks, epochs_, index in ((base, b, 0), (cand, c, 1)):
            entry = benchmark(name, epochs_)
            entry["extra_info"]["interleave"] = {"ring": ring, "index": index, "size": 2}
            for k, epoch in enumerate(entry["extra_info"]["epochs"]):
                epoch["turn"] = 2 * k + index
            benchmarks.append(entry)
    return runs(tmp_path, base, cand)


# The sample benchmark's workload, in batches of 100 so the last batch is partial (1,050 samples).
TINY = load_module(ROOT / "tests" / "sample" / "bench_tiny.py").WORKLOAD.but(
    batch_size=100,
    schedules={"default": Schedule(epochs=4, train_samples=1050, test_samples=500)},
)


class RecordingBenchmark:
    """Stands in for pytest-benchmark's fixture and logs what happens inside timed rounds."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.extra_info: dict = {}
        self.in_round = False
        self.rounds = 0
        self.pedantic_calls = 0

    def pedantic(self, target, args=(), kwargs=None, setup=None, teardown=None, rounds=1,
                 warmup_rounds=0, iterations=1):
        self.pedantic_calls += 1
        assert iterations == 1 and warmup_rounds == 0
        for _ in range(rounds):
            # As pytest-benchmark: setup runs untimed and may return (args, kwargs).
            arguments = setup() if setup else None
            args, kwargs = arguments or ((), {})
            self.in_round = True
            target(*args, **kwargs)
            self.in_round = False
            self.rounds += 1
            teardown(*args, **kwargs)


SAMPLE_ARGS = ["tests/sample/bench_tiny.py", "-o", "python_files=bench_*.py", "--profile", "smoke",
               "--devices", "cpu", "--offline", "--require-data"]


def fitbench_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
                 timeout: int = 600) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "fitbench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**clean, **(env or {})})
