"""The plugin's fixtures: thin wrappers over the library.

* `load_dataset` (session): each dataset parsed once and shared by every test of the session;
* `device` (parametrized by fitbench.plugin.hooks over --devices) and its `strategy`;
* `profile`, `case` (the test's case of its module's EXPERIMENT) and `train` (a workload
  trained with its epochs as benchmark rounds).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from fitbench.core import lazy
from fitbench.core.record import Record
from fitbench.measure import devices, memory, startup
from fitbench.measure.datasets import Dataset, DatasetError, DatasetNotFound
from fitbench.measure.devices import Device, DeviceUnavailable
from fitbench.measure.experiments import Case, Experiment
from fitbench.measure.workloads import Variant, Workload
from fitbench.plugin.collect import remember_work, skipped_variant, under_variant_option
from fitbench.plugin.session import RESULT_KEY, UNFINISHED, cached_dataset, state
from fitbench.processes import cluster as clusters

tf = lazy.module("tensorflow", startup.load)
# Imported by the first test that trains: an isolated session's controller trains nothing.
runner = lazy.module("fitbench.measure.runner")


@pytest.fixture(scope="session")
def load_dataset(request: pytest.FixtureRequest) -> Callable[..., Dataset]:
    """`load_dataset(workload.dataset, workload.dataset_args)`: the dataset (a registered name or a
    function), loaded on first use and then cached.

    A dataset that cannot be found skips the test with a reason saying how to provide it,
    or fails it under --require-data; a corrupt file always fails it.
    """
    config = request.config

    def load(source: str | Callable[..., object], args: dict | None = None) -> Dataset:
        outcome = cached_dataset(config, source, args)
        if isinstance(outcome, DatasetNotFound) and not config.getoption("require_data"):
            pytest.skip(str(outcome))
        if isinstance(outcome, DatasetError):
            pytest.fail(str(outcome), pytrace=False)
        return outcome

    return load


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> Device:
    """The device named by the test's parameter; skipped with the reason when it is absent."""
    kind = getattr(request, "param", "cpu")
    try:
        return devices.resolve(kind, request.config.getoption("tpu"))
    except DeviceUnavailable as reason:
        pytest.skip(f"{kind}: {reason}")


@pytest.fixture(scope="session")
def strategy(device: Device) -> tf.distribute.Strategy:
    """The tf.distribute strategy of `device`: build and compile models inside its scope()."""
    return device.strategy


@pytest.fixture(scope="session")
def profile(request: pytest.FixtureRequest) -> str:
    """The schedule profile chosen with --profile."""
    return request.config.getoption("profile")


@pytest.fixture
def case(request: pytest.FixtureRequest, profile: str, device: Device) -> Case:
    """The test's case of its module's EXPERIMENT (parametrized by fitbench.plugin.hooks over the grid),
    with its workload and its target for this profile and device kind."""
    experiment: Experiment | None = getattr(request.module, "EXPERIMENT", None)
    if experiment is None:
        pytest.fail(f"{request.module.__file__} exports no EXPERIMENT for the `case` fixture; "
                    "see the README's 'Your own benchmark'", pytrace=False)
    resolved = experiment.resolve(getattr(request, "param", ""), profile, device.kind)
    if resolved is None:  # the plugin deselects these; reached only when called directly
        pytest.skip(f"not in the {profile} subset")
    return under_variant_option(request.config, resolved)


@pytest.fixture
def train(request: pytest.FixtureRequest, benchmark, device: Device, load_dataset,
          profile: str) -> Callable[..., Record]:
    """`train(workload)`: trains it on this test's device under --profile and returns its Record.

    Epochs 2..N are the benchmark's rounds; the record goes to the benchmark's extra_info and
    the session summary once the test has checked its target (fitbench.plugin.hooks).
    Under an experiment with a `reference` variant (or `train(workload, reference=Variant())`),
    the same workload under that variant trains in the same test, in turns epoch by epoch
    (untimed for the benchmark), for a paired speed-up.
    """
    node = request.node

    def keep(record: Record) -> Record:
        # Under pytest-xdist, N workers train at once on one machine.
        workers = getattr(request.config, "workerinput", {}).get("workercount", 1)
        record.measurement = dataclasses.replace(record.measurement, concurrent=int(workers))
        gate = node.get_closest_marker("gate")
        record.gate = dict(gate.kwargs) if gate else {}
        node.stash[RESULT_KEY] = record  # written when the test's report is made
        remember_work(request.config, node.nodeid, record)
        return record

    def run(workload: Workload, reference: Variant | None = None) -> Record:
        if reference is None:
            reference = getattr(getattr(request.module, "EXPERIMENT", None), "reference", None)
        if request.config.getoption("batch_per_worker"):  # weak scaling: the batch is each worker's
            workload = workload.but(batch_size=workload.batch_size * device.workers)
        dataset = load_dataset(workload.dataset, workload.dataset_args)
        if workload.batch_size % device.replicas:
            replicas = (f"--cpu-replicas {device.replicas}" if device.kind == "cpu"
                        else f"{device.replicas} {device.kind.upper()}s")
            pytest.skip(f"global batch size {workload.batch_size} does not divide over {device.replicas} replicas "
                        f"({replicas}); use a replica count that divides it, such as 2 or 4")
        skipped = skipped_variant(request.config, device.kind, workload.variant)
        if skipped:
            pytest.skip(skipped)
        session_progress = state(request.config).progress
        on_epoch = (session_progress.test(node.nodeid, workload.schedule(profile, device.kind).epochs,
                                          workload.metric_name)
                    if session_progress is not None else None)
        failure = None
        try:
            # Time to target needs the checked metric after every epoch: the test set is then
            # evaluated after each (untimed); the validation set always is.
            case = node.funcargs.get("case")
            track_test = getattr(case, "split", "test") == "test"
            twin = None if reference is None or reference == workload.variant else workload.but(variant=reference)
            if benchmark is not None:
                benchmark.extra_info[UNFINISHED] = True
            record = runner.train(workload, profile, device, dataset, benchmark, on_epoch, track_test, twin,
                                  explain_of(request.config, node.nodeid))
        except runner.Diverged as diverged:
            keep(diverged.record)
            failure = str(diverged)
        except DatasetError as error:  # a split the data cannot give: named before anything trains
            failure = str(error)
        except runner.ModelFunctionError as error:
            if request.config.getoption("tbstyle", "auto") == "long":
                raise  # the user's own traceback, chained, as asked for
            failure = str(error)
        except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError) as error:
            if not device.cluster:
                raise
            # A worker died or stopped answering: every later test would block or fail the same way.
            pytest.exit(f"the cluster lost a worker, ending the session: {clusters.lost_worker(str(error))}",
                        returncode=3)
        except (tf.errors.ResourceExhaustedError, MemoryError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            failure = (f"out of memory at batch size {workload.batch_size} on {device.kind} ({workload.name}; "
                       f"{memory.out_of_memory_figures(device.strategy)}): {type(error).__name__}: {first_line}")
        if failure is not None:  # failed outside the except block: one line, no chained traceback
            pytest.fail(failure, pytrace=False)
        return keep(record)

    return run


def explain_of(config: pytest.Config, nodeid: str) -> runner.Explain | None:
    """What --explain-steps asks of this test: its steps and its own, emptied, profile folder."""
    steps = config.getoption("explain_steps")
    if steps <= 0:
        return None
    folder = Path(config.getoption("explain_dir")) / re.sub(r"[^\w.\[\]-]+", "_", nodeid)
    shutil.rmtree(folder, ignore_errors=True)  # the last run's profile of this test
    return runner.Explain(steps, folder)
