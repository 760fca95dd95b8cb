"""The plugin's command-line options and markers, declared once (the data and gate options come
from fitbench.core.options, shared with the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fitbench.core.options import add_data_options, add_gate_options
from fitbench.measure.devices import KINDS
from fitbench.measure.workloads import DEFAULT_PROFILE, PROFILES

MARKERS = (
    "cpu: runs on the CPU",
    "gpu: runs on a GPU (skipped when none is visible)",
    "tpu: runs on a TPU (skipped when none is reachable)",
    "gate(time, metric, first_epoch): this benchmark's regression thresholds (fitbench compare, --gate)",
)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fitbench")
    add_data_options(group.addoption)
    group.addoption(
        "--require-data",
        action="store_true",
        help="fail, rather than skip, the tests whose dataset cannot be found (for CI)",
    )
    add_device_options(group.addoption)
    add_training_options(group.addoption)
    add_session_options(group.addoption)
    add_gate_options(group.addoption, prefix="gate-")


def add_device_options(addoption: Callable[..., Any]) -> None:
    """Where to train: the device kinds, a TPU, logical CPUs, a cluster."""
    addoption(
        "--devices",
        default=",".join(KINDS),
        help=f"comma-separated devices to run on, from {', '.join(KINDS)} (default: all; "
        "absent ones are skipped with the reason)",
    )
    addoption(
        "--tpu",
        default=None,
        help="TPU name or grpc:// address for TPUClusterResolver ('local' on a Cloud TPU VM; "
        "default: $TPU_NAME, then Colab's $COLAB_TPU_ADDR)",
    )
    addoption(
        "--cpu-replicas",
        type=int,
        default=1,
        help="split the CPU into N logical devices and train the cpu case with MirroredStrategy "
        "over them (exercises the multi-replica path without GPUs)",
    )
    addoption(
        "--cluster",
        choices=("auto", "tf_config", "slurm", "none"),
        default="auto",
        help="train as one worker of a cluster (MultiWorkerMirroredStrategy): 'auto' (default) when "
        "TF_CONFIG is set or in a Slurm job step of 2+ tasks (srun -n N); 'none' never; on one machine "
        "`fitbench workers N -- pytest ...` starts the workers",
    )
    addoption(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="size TensorFlow's intra-op and inter-op thread pools to N threads each, before it starts "
        "(recorded; results of different sizes are not compared). Default 0: TensorFlow's own, one per "
        "core. On a small shared VM, 1 gives the steadiest A/B sessions (docs/gating.md)",
    )
    addoption(
        "--batch-per-worker",
        action="store_true",
        help="in a cluster, each case's batch size is per worker (global batch = batch x workers: weak "
        "scaling, as `fitbench workers N --scaling` runs it); default: it is the global batch",
    )


def add_training_options(addoption: Callable[..., Any]) -> None:
    """What to train: the profile's schedules, a training variant."""
    addoption(
        "--profile",
        choices=PROFILES,
        default=DEFAULT_PROFILE,
        help="schedule to train: 'full' is the notebooks' exact schedule, 'default' bounds cases "
        "too slow for a laptop CPU, 'smoke' is a small subset for CI (default: %(default)s)",
    )
    addoption(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="train every selected benchmark under this training variant (repeatable): "
        "precision=float32|mixed_bfloat16|mixed_float16, jit_compile=on|off, steps_per_execution=K, "
        "pipeline=tf.data|numpy; the variant is part of the test id and of what the record measured",
    )
    addoption(
        "--slow-variants",
        action="store_true",
        help="also run variants this device has no fast path for (float16 on a CPU, bfloat16 on a CPU "
        "without AVX512_BF16/AMX), which are skipped with the reason otherwise",
    )


def add_session_options(addoption: Callable[..., Any]) -> None:
    """How the session runs: the peak measured again, crash isolation, the gate's baseline."""
    addoption(
        "--remeasure-peak",
        action="store_true",
        help="measure the devices' matmul peak again instead of reading it from the pytest cache",
    )
    addoption(
        "--no-isolate",
        action="store_true",
        help="train in the session's own process; by default a session that collects benchmark files "
        "trains in one pytest-xdist worker (as with -n 1), so that a native crash or the OOM killer "
        "fails that test alone and the session goes on",
    )
    addoption(
        "--explain-steps",
        type=int,
        default=0,
        metavar="K",
        help="after each test's schedule, train K more steps under TensorFlow's profiler (untimed, in "
        "the session's turns) and record their time by phase, op type and op name, for `fitbench "
        "explain BASE.json CANDIDATE.json` (fitbench ab --explain sets it; default: 0, off)",
    )
    addoption(
        "--explain-dir",
        default=".fitbench/profiles",
        metavar="DIR",
        help="where --explain-steps keeps each test's profile (TensorBoard/Perfetto .xplane.pb files), "
        "a folder per test (default: %(default)s)",
    )
    addoption(
        "--gate",
        action="append",
        default=[],
        metavar="BASELINE.json",
        help="gate this session against a saved pytest-benchmark JSON (repeat to pool several runs): "
        "a benchmark that regressed is named at the end and the session fails (see fitbench compare)",
    )
