"""pytest hooks: device configuration and parametrization, the report header, what
pytest-benchmark writes about the machine and the run, the session summary, the gate, and
taking turns in an interleaved run. Registered by the project's conftest.py."""

from __future__ import annotations

import os

import pytest

from fitbench import devices, gate, results, summary, turns
from fitbench.results import Row

# The runner's Result of a test, stored by the `train` fixture; read when its report is made.
RESULT_KEY = pytest.StashKey[object]()
ROW_PROPERTY = "fitbench"


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.fitbench_devices = devices.parse_kinds(config.getoption("devices"))
    except devices.UnknownDevice as error:
        raise pytest.UsageError(str(error)) from error
    if config.getoption("cpu_replicas") < 1:
        raise pytest.UsageError("--cpu-replicas must be 1 or more")
    if config.getoption("benchmark_cprofile", None):
        # cProfile makes pytest-benchmark call the target once more: one extra epoch of training.
        raise pytest.UsageError("--benchmark-cprofile is not supported: it would train an extra epoch")
    config.pluginmanager.register(SessionRows(config), "fitbench-rows")
    gate.configure(config)
    # Must run before anything initializes TensorFlow's devices.
    devices.configure(cpu_replicas=config.getoption("cpu_replicas"))
    join_ring(config)


def join_ring(config: pytest.Config) -> None:
    """Under `fitbench interleave`: join the ring and wait for the first turn, so that the
    session does nothing (collection included) while another session's epoch is timed."""
    spec = os.environ.get(turns.ENV)
    if not spec or hasattr(config, "workerinput"):
        return
    if config.getoption("numprocesses", None):
        raise pytest.UsageError("an interleaved run cannot use pytest-xdist (-n): its workers would "
                                "train at the same time; drop -n")
    try:
        ring = turns.Ring.join(spec)
    except turns.RingError as error:
        raise pytest.UsageError(str(error)) from error
    turns.enter(ring)
    ring.take()


def pytest_unconfigure(config: pytest.Config) -> None:
    ring = turns.current()
    if ring is not None:
        ring.leave()
        turns.enter(None)


def pytest_report_header(config: pytest.Config) -> list[str]:
    import keras
    import tensorflow as tf

    lines = [f"fitbench: TensorFlow {tf.__version__}, Keras {keras.__version__}, "
             f"profile {config.getoption('profile')}, devices {','.join(config.fitbench_devices)}"]
    return lines + [f"  {line}" for line in devices.describe(config.getoption("tpu"))]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses `device` runs once per selected device, marked cpu/gpu/tpu."""
    if "device" in metafunc.fixturenames:
        kinds = metafunc.config.fitbench_devices
        params = [pytest.param(kind, marks=getattr(pytest.mark, kind), id=kind) for kind in kinds]
        metafunc.parametrize("device", params, indirect=True, scope="session")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # After the test body, before its report is made: the one place a result's full record
    # (accuracy check and place in the suite included) goes to pytest-benchmark's extra_info
    # and, as the summary row, to the report (pytest-xdist sends user_properties from its
    # workers to the controller).
    if call.when == "call" and RESULT_KEY in item.stash:
        info = item.stash[RESULT_KEY].extra_info()
        benchmark = getattr(item, "funcargs", {}).get("benchmark")
        if benchmark is not None:
            benchmark.extra_info.update(info)
        item.user_properties.append((ROW_PROPERTY, info))
    return (yield)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info.update(devices.machine_info())


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    """Add the device comparison (per sample, against the CPU) to the saved JSON."""
    rows = [Row.from_extra_info(b.get("extra_info") or {}, b.get("name", ""), b.get("group"))
            for b in output_json.get("benchmarks", []) if "epoch_seconds" in (b.get("extra_info") or {})]
    output_json["fitbench"] = {
        "profile": config.getoption("profile"),
        "device_comparison": [s.as_dict() for s in results.device_speedups(rows)],
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if gate.evaluate(session.config) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class SessionRows:
    """Collects each benchmark's summary row from its report (from xdist workers too)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        config.fitbench_rows = self.rows = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.rows += [Row.from_extra_info(info, info.get("name", ""), info.get("group"))
                          for name, info in report.user_properties if name == ROW_PROPERTY]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    rows = config.fitbench_rows
    if not rows:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fitbench summary")
    write(f"profile {config.getoption('profile')}; s/epoch: median of epochs 2..N; accuracy >= threshold; "
          "vs cpu: per sample")
    speedups = results.device_speedups(rows)
    for line in summary.lines(rows, speedups):
        write(line)
    if speedups:
        write("")
        write("device comparison (per training sample, same global batch size):")
        for line in summary.speedup_lines(speedups):
            write(f"  {line}")
    ring = turns.current()
    if ring is not None:
        write("")
        write(f"interleaved: session {ring.index + 1} of {ring.size} in ring {ring.ring_id}"
              + (f"; {ring.broken}" if ring.broken else ""))
    gate.report(config, write, terminalreporter)
