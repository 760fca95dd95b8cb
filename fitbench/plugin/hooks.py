"""The session's start and end: options checked, devices configured, the cluster found,
the gate read, live progress, the ring joined in an interleaved run; the report header."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys

import pytest

from fitbench.measure import devices
from fitbench.measure.workloads import Variant
from fitbench.plugin import durable, isolation
from fitbench.plugin.gating import configure_gate
from fitbench.plugin.results import choose_compared_run, is_chief, name_saved_run
from fitbench.plugin.session import SessionRecords, state
from fitbench.present import progress
from fitbench.processes import cluster as clusters
from fitbench.processes import groups, turns


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark's, which loads --benchmark-compare
def pytest_configure(config: pytest.Config) -> None:
    try:
        state(config).devices = devices.parse_kinds(config.getoption("devices"))
    except devices.UnknownDevice as error:
        raise pytest.UsageError(str(error)) from error
    if config.getoption("cpu_replicas") < 1:
        raise pytest.UsageError("--cpu-replicas must be 1 or more")
    if config.getoption("benchmark_cprofile", None):
        # cProfile makes pytest-benchmark call the target once more: one extra epoch of training.
        raise pytest.UsageError("--benchmark-cprofile is not supported: it would train an extra epoch")
    try:
        state(config).variant = Variant.parse(config.getoption("variant")) if config.getoption("variant") else None
    except ValueError as error:
        raise pytest.UsageError(str(error)) from error
    try:
        state(config).cluster = clusters.detect(config.getoption("cluster"))
    except clusters.ClusterError as error:
        raise pytest.UsageError(str(error)) from error
    if state(config).cluster is not None:
        if config.getoption("numprocesses", None):
            raise pytest.UsageError("a cluster worker cannot use pytest-xdist (-n): its workers would train "
                                    "apart from the cluster; drop -n")
        if not state(config).cluster.is_chief:
            write_no_results(config)
    configure_gate(config)
    name_saved_run(config)
    state(config).compare_notes = choose_compared_run(config)
    state(config).records = SessionRecords(config)
    config.pluginmanager.register(state(config).records, "fitbench-records")
    state(config).interrupted = False
    if not hasattr(config, "workerinput") and is_chief(config):
        config.pluginmanager.register(durable.DurableResults(config), durable.PLUGIN_NAME)
        groups.sigterm_as_interrupt()
    # Must run before anything initializes TensorFlow's devices (in a cluster: waits for every
    # worker). Not in an isolated session's controller: it trains nothing and holds no TensorFlow.
    if not isolation.isolating_controller(config):
        try:
            devices.configure(cpu_replicas=config.getoption("cpu_replicas"), cluster=state(config).cluster)
        except ValueError as error:
            raise pytest.UsageError(str(error)) from error
    state(config).progress = start_progress(config)
    join_ring(config)


def write_no_results(config: pytest.Config) -> None:
    """A cluster worker other than the chief trains in step with it but writes nothing: no JSON,
    no saved run, no comparison, no gate (before pytest-benchmark reads these options)."""
    for name, value in (("benchmark_json", None), ("benchmark_save", None), ("benchmark_autosave", None),
                        ("benchmark_save_data", False), ("benchmark_compare", None),
                        ("benchmark_compare_fail", None), ("benchmark_histogram", None), ("gate", [])):
        if hasattr(config.option, name):
            setattr(config.option, name, value)


def start_progress(config: pytest.Config) -> progress.Progress | None:
    """Epoch lines while tests train, unless -q. On the terminal through pytest's reporter (with
    capture suspended for the line); an xdist worker writes to its stderr, which reaches the
    controller's terminal, prefixed with the worker's id."""
    if config.get_verbosity() < 0:
        return None
    worker = getattr(config, "workerinput", {}).get("workerid")

    def write(line: str) -> None:
        capture = config.pluginmanager.getplugin("capturemanager")
        reporter = config.pluginmanager.getplugin("terminalreporter")  # registered after this hook
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if worker or reporter is None:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
            else:
                reporter.write_line(line)

    # An isolated session's one worker runs every test in the collection's order: it knows what is to come.
    alone = not worker or isolation.sole_worker(config)
    return progress.Progress(write, pending={} if alone else None, prefix="" if alone else f"[{worker}] ")


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if (session_progress := state(item.config).progress) is not None:
        session_progress.finished(item.nodeid)


def join_ring(config: pytest.Config) -> None:
    """Under `fitbench interleave`: join the ring and wait for the first turn, so that the
    session does nothing (collection included) while another session's epoch is timed."""
    spec = os.environ.get(turns.ENV)
    if not spec or (hasattr(config, "workerinput") and not isolation.sole_worker(config)):
        return
    if isolation.isolating_controller(config):
        return  # its one worker trains, and takes the turns
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        raise pytest.UsageError("an interleaved run cannot use pytest-xdist (-n): its workers would "
                                "train at the same time; drop -n")
    try:
        # A cluster's chief is never paused: TensorFlow's coordination service, which it hosts,
        # must keep answering the other workers' heartbeats while another session holds the turn.
        ring = turns.Ring.join(spec, pausable=state(config).cluster is None)
    except turns.RingError as error:
        raise pytest.UsageError(str(error)) from error
    turns.enter(ring)
    ring.take()


def pytest_unconfigure(config: pytest.Config) -> None:
    ring = turns.current()
    if ring is not None:
        ring.leave()
        turns.enter(None)
        ended = state(config).ended
        if ended is not None and not hasattr(config, "workerinput"):
            # Its results saved, what is left of an interleaved session is TensorFlow's cleanup:
            # a spent tf.data iterator's deletion waits up to a minute for its autotuning thread
            # (runner.release), and the ring's driver waits for this process to exit before the
            # next round (or ends it after a minute). So it exits now, with pytest's status.
            atexit.register(exit_now, int(ended.exitstatus))


def exit_now(status: int) -> None:
    """Exit at once (the last atexit handler registered runs first): output flushed, no
    interpreter or TensorFlow teardown."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"fitbench: TensorFlow {devices.version('tensorflow')}, Keras {devices.version('keras')}, "
             f"profile {config.getoption('profile')}, devices {','.join(state(config).devices)}"]
    if isolation.isolating_controller(config):  # TensorFlow lives in the worker only
        lines += [f"  {line}" for line in devices.describe_without_tensorflow(config.getoption("cpu_replicas"))]
    else:
        lines += [f"  {line}" for line in devices.describe(config.getoption("tpu"))]
    notes = [isolation.header_note(config), *state(config).compare_notes]
    return lines + [f"fitbench: {note}" for note in notes if note]
