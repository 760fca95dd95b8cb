"""Options declared once, for pytest (`--gate-alpha`, `--data-dir`, ...) and the CLI (`--alpha`, ...),
in the manner of pytest-benchmark's `add_*_options(addoption, prefix)`. Defaults: fitbench.core.thresholds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fitbench.core import thresholds
from fitbench.core.thresholds import DEFAULTS


def add_data_options(addoption: Callable[..., Any]) -> None:
    """Where registered datasets are read from, and whether they may be downloaded: pytest's and
    `fitbench overhead`'s."""
    addoption("--data-dir", default=None,
              help="directory the registered datasets are read from (default: $FITBENCH_DATA_DIR); a dataset's "
              "loader may look in more places after it")
    addoption("--offline", action="store_true",
              help="never let a registered dataset's loader download it when it is not found locally")


def add_gate_options(addoption: Callable[..., Any], prefix: str = "") -> None:
    """The regression gate's options; `prefix` is 'gate-' in pytest and '' in `fitbench compare`."""
    addoption(f"--{prefix}alpha", default=thresholds.ALPHA, metavar="A",
              help="false-alarm rate over all benchmarks compared (Holm; in (0, 0.5); default %(default)s)")
    addoption(f"--{prefix}time-threshold", default=DEFAULTS.time, metavar="F",
              help="smallest epoch-time slowdown that counts (default %(default)s = 5%%)")
    addoption(f"--{prefix}metric-threshold", default=DEFAULTS.metric, metavar="D",
              help="largest tolerated worsening of the checked metric, in its units, against its goal "
              "(default %(default)s = 2 points of accuracy; set it per benchmark for errors such as MAE)")
    addoption(f"--{prefix}first-epoch-threshold", default=DEFAULTS.first_epoch, metavar="F",
              help="largest tolerated first-epoch slowdown (default %(default)s = 100%%); gated only "
              "with enough runs a side for a rank test, else informational")
    addoption(f"--{prefix}thresholds", default=None, metavar="FILE.json",
              help='per-benchmark thresholds: {"glob on name or group": {"time": 0.10, "metric": 0.02}}')
    addoption(f"--{prefix}run-noise", default="auto", metavar="SD",
              help="this machine's run-to-run noise: the sd of a run's log median epoch time (0.08 = 8%%), "
              "measured by `fitbench noise` over unchanged runs; 0 compares epochs as if runs never drift; "
              f"'auto' (default): estimated from 3+ runs, else {thresholds.ASSUMED_RUN_NOISE} is assumed "
              "(this project's shared VM); interleaved runs are compared pair by pair")
    addoption(f"--{prefix}allow-missing", action="store_true",
              help="a benchmark of the baseline that the candidate lacks does not fail the gate")
    addoption(f"--{prefix}compare-software", action="store_true",
              help="compare runs whose software differs (TensorFlow, Keras, CUDA, cuDNN, Python): "
              "'did this upgrade make training slower?'; the machine must still be the same")
    addoption(f"--{prefix}allow-mismatch", action="store_true",
              help="compare even runs of different machines (CPU model, GPUs, OS); the verdicts "
              "then mix machine and code")


@dataclass(frozen=True)
class GateSettings:
    """The gate's options, checked: ValueError names a bad one."""

    alpha: float
    defaults: thresholds.Thresholds
    overrides: list
    run_noise: float | str
    allow_missing: bool
    compare_software: bool
    allow_mismatch: bool

    @classmethod
    def read(cls, get: Callable[[str], Any], prefix: str = "") -> GateSettings:
        """From option values; `get('alpha')` returns the value of --{prefix}alpha."""
        key = prefix.replace("-", "_")
        value = lambda name: get(f"{key}{name}")  # noqa: E731
        return cls(
            alpha=thresholds.parse_alpha(value("alpha")),
            defaults=DEFAULTS.but({"time": value("time_threshold"), "metric": value("metric_threshold"),
                                   "first_epoch": value("first_epoch_threshold")}),
            overrides=thresholds.load_thresholds(value("thresholds")),
            run_noise=thresholds.parse_run_noise(value("run_noise")),
            allow_missing=bool(value("allow_missing")),
            compare_software=bool(value("compare_software")),
            allow_mismatch=bool(value("allow_mismatch")),
        )
