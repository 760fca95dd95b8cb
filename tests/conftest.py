"""Helpers for fitbench's own tests: tiny synthetic IDX datasets written by the test."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fitbench.measure.datasets import DIRECTORY_NAMES, IDX_FILES

ROOT = Path(__file__).resolve().parent.parent
# A user's project, run by test_outside.py from a fresh environment, never by this session.
collect_ignore = ["outside"]
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


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory) -> Path:
    """A data directory holding synthetic fashion-mnist/ and mnist/ (6,000 train, 1,000 test)."""
    root = tmp_path_factory.mktemp("data")
    for name in DIRECTORY_NAMES:
        write_dataset(root, name)
    return root


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
    for name in ("fitbench", "tests/sample", "tests/plugins"):
        shutil.copytree(ROOT / name, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "tests/__init__.py"):
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
    from fitbench.compare.record import Check, Epoch, Measurement, Record

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


@pytest.fixture(scope="session")
def tiny_dataset(synthetic_data_dir):
    """The synthetic Fashion-MNIST, loaded through fitbench's own loader."""
    from fitbench.measure import datasets

    return datasets.load("fashion_mnist", synthetic_data_dir, allow_download=False)


@pytest.fixture(scope="session")
def cpu():
    """This machine's cpu device (its strategy), as the `device` fixture resolves it."""
    from fitbench.measure import devices

    return devices.resolve("cpu")
