"""pytest hooks: device configuration, parametrization over devices and each experiment's grid,
the report header, what pytest-benchmark writes about the machine and the run, keeping
`--benchmark-compare` like with like, the session summary, the gate, and taking turns in an
interleaved run. Registered by the project's conftest.py."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from pathlib import Path

import pytest

import fitbench
from fitbench import cluster as clusters
from fitbench import devices, durable, format, gate, hardware, peak, progress, turns
from fitbench.experiments import Case
from fitbench.options import GateSettings
from fitbench.record import SCHEMA_VERSION, Record, RecordError
from fitbench.results import PEAK_KEY, NotBenchmarkJSON, Run, device_speedups, efficiency, load_run, variant_speedups
from fitbench.workloads import Variant

# The runner's Record of a test, stored by the `train` fixture; written when its report is made.
RESULT_KEY = pytest.StashKey[Record]()
RECORD_PROPERTY = "fitbench"
POSITION_PROPERTY = "fitbench-position"
RECORDS_WITHOUT_ROUNDS = "records_without_rounds"


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark's, which loads --benchmark-compare
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
    try:
        config.fitbench_variant = Variant.parse(config.getoption("variant")) if config.getoption("variant") else None
    except ValueError as error:
        raise pytest.UsageError(str(error)) from error
    try:
        config.fitbench_cluster = clusters.detect(config.getoption("cluster"))
    except clusters.ClusterError as error:
        raise pytest.UsageError(str(error)) from error
    if config.fitbench_cluster is not None:
        if config.getoption("numprocesses", None):
            raise pytest.UsageError("a cluster worker cannot use pytest-xdist (-n): its workers would train "
                                    "apart from the cluster; drop -n")
        if not config.fitbench_cluster.is_chief:
            write_no_results(config)
    configure_gate(config)
    name_saved_run(config)
    config.fitbench_compare_notes = choose_compared_run(config)
    config.pluginmanager.register(SessionRecords(config), "fitbench-records")
    config.fitbench_interrupted = False
    if not hasattr(config, "workerinput") and is_chief(config):
        config.pluginmanager.register(durable.DurableResults(config), "fitbench-durable")
        durable.install_signal_handlers()
    # Must run before anything initializes TensorFlow's devices (in a cluster: waits for every worker).
    try:
        devices.configure(cpu_replicas=config.getoption("cpu_replicas"), cluster=config.fitbench_cluster)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from error
    config.fitbench_progress = start_progress(config)
    join_ring(config)


def is_chief(config: pytest.Config) -> bool:
    """Whether this session writes results: always, unless it is a cluster worker other than the chief."""
    cluster = getattr(config, "fitbench_cluster", None)
    return cluster is None or cluster.is_chief


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

    return progress.Progress(write, pending=None if worker else {}, prefix=f"[{worker}] " if worker else "")


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if (session_progress := getattr(item.config, "fitbench_progress", None)) is not None:
        session_progress.finished(item.nodeid)


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
    lines += [f"  {line}" for line in devices.describe(config.getoption("tpu"))]
    return lines + [f"fitbench: {note}" for note in config.fitbench_compare_notes]


# --- parametrization: devices and each experiment's grid ---------------------------------------

def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses `device` runs once per selected device, marked cpu/gpu/tpu; every
    test that takes `case` runs once per case of its module's EXPERIMENT, in the grid's order."""
    if "device" in metafunc.fixturenames:
        kinds = metafunc.config.fitbench_devices
        params = [pytest.param(kind, marks=getattr(pytest.mark, kind), id=kind) for kind in kinds]
        metafunc.parametrize("device", params, indirect=True, scope="session")
    experiment = getattr(metafunc.module, "EXPERIMENT", None)
    if "case" not in metafunc.fixturenames or experiment is None:
        return
    # Under --variant the id says so: its results never share a name with the plain run's.
    override = metafunc.config.fitbench_variant
    suffix = f"variant-{'-'.join(metafunc.config.getoption('variant'))}" if override else ""
    if experiment.parametrized:
        ids = {case: "-".join(part for part in (case, suffix) if part) for case in experiment.cases}
        metafunc.parametrize("case", [pytest.param(case, id=ids[case]) for case in experiment.cases], indirect=True)
    elif suffix:
        metafunc.parametrize("case", [pytest.param("", id=suffix)], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Name each experiment's pytest-benchmark group; deselect the cases a profile leaves out
    (the smoke subset), with one line saying so."""
    profile = config.getoption("profile")
    kept, left_out = [], []
    for item in items:
        experiment = getattr(getattr(item, "module", None), "EXPERIMENT", None)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if experiment is None or "case" not in getattr(item, "fixturenames", ()):
            kept.append(item)
            continue
        case = params.get("case", "")
        if experiment.target(profile, case, params.get("device", "cpu")) is None:
            left_out.append(item)
            continue
        item.add_marker(pytest.mark.benchmark(group=experiment.group(case)))
        kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
        cases = "1 case is" if len(left_out) == 1 else f"{len(left_out)} cases are"
        config.fitbench_left_out = f"{cases} not in the {profile} profile's subset (deselected)"
    config.fitbench_order = {item.name: index for index, item in enumerate(items)}


def pytest_collection_finish(session: pytest.Session) -> None:
    """At the start: the selected devices' matmul peaks; the epochs each selected test will
    train, for the session's time left (live progress)."""
    kinds = {getattr(getattr(item, "callspec", None), "params", {}).get("device") for item in session.items
             if getattr(getattr(item, "module", None), "EXPERIMENT", None) is not None}
    session.config.fitbench_peak_kinds = sorted(kind for kind in kinds if kind)
    if session.config.fitbench_peak_kinds and not hasattr(session.config, "workerinput"):
        measured_peaks(session.config)
    session_progress = getattr(session.config, "fitbench_progress", None)
    if session_progress is None or session_progress.pending is None:
        return
    profile = session.config.getoption("profile")
    # Tests on a device kind this machine lacks will be skipped: they are not time to come.
    present = {"cpu"} | ({"gpu"} if devices.gpu_names() else set()) | (
        {"tpu"} if devices.tpu_address(session.config.getoption("tpu")) else set())
    for item in session.items:
        experiment = getattr(getattr(item, "module", None), "EXPERIMENT", None)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if experiment is None or "case" not in getattr(item, "fixturenames", ()):
            continue
        device = params.get("device", "cpu")
        case = experiment.resolve(params.get("case", ""), profile, device)
        if case is None or device not in present:
            continue
        case = under_variant_option(session.config, case)
        if not skipped_variant(session.config, device, case.workload.variant):
            session_progress.pending[item.nodeid] = case.workload.schedule(profile, device).epochs


def under_variant_option(config: pytest.Config, case: Case) -> Case:
    """The case under --variant (its settings on top of the case's own variant), else as it is."""
    settings = config.getoption("variant")
    if not settings:
        return case
    variant = Variant.parse(settings, base=case.workload.variant)
    return dataclasses.replace(case, workload=case.workload.but(variant=variant))


def skipped_variant(config: pytest.Config, kind: str, variant: Variant) -> str | None:
    """Why `variant` is skipped on `kind`: no fast path for its precision there, and the user
    asked for neither --slow-variants nor --variant precision=...; or it cannot train in a
    cluster (the numpy pipeline needs fit); None to run it."""
    if variant.pipeline == "numpy" and getattr(config, "fitbench_cluster", None) is not None:
        from fitbench.runner import NUMPY_IN_CLUSTER

        return NUMPY_IN_CLUSTER
    slow = devices.slow_precision(kind, variant.precision)
    asked = any(setting.replace(" ", "").startswith("precision=") for setting in config.getoption("variant"))
    if slow and not (asked or config.getoption("slow_variants")):
        return f"{slow}; run it anyway with --slow-variants"
    return None


# --- the record: written once, when the test's report is made ---------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # After the test body (its accuracy check included), before its report is made: the record
    # goes to pytest-benchmark's extra_info and, as the test report's user property, to the
    # session summary (pytest-xdist sends user_properties from its workers to the controller).
    if call.when == "call" and RESULT_KEY in item.stash:
        record = item.stash[RESULT_KEY]
        info = record.to_json()
        benchmark = getattr(item, "funcargs", {}).get("benchmark")
        if benchmark is not None:
            benchmark.extra_info.update(info)
        params = dict(getattr(getattr(item, "callspec", None), "params", {}))
        group = item.get_closest_marker("benchmark")
        item.user_properties.append((RECORD_PROPERTY, {
            "name": item.name, "fullname": item.nodeid, "group": group.kwargs.get("group") if group else None,
            "params": {key: str(value) for key, value in params.items()},
            "param": getattr(getattr(item, "callspec", None), "id", None), "extra_info": info}))
        # Its place in the collection (the grid's order), for the summary of an xdist controller.
        item.user_properties.append((POSITION_PROPERTY, item.config.fitbench_order.get(item.name)))
    return (yield)


class SessionRecords:
    """Collects each benchmark's record from its report (from xdist workers too)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.records: list[Record] = []
        self.entries: list[dict] = []  # as reported: what the xdist controller writes as JSON
        self.positions: dict[str, int] = {}  # test name -> place in the collection

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            for key, entry in report.user_properties:
                if key == POSITION_PROPERTY and entry is not None:
                    self.positions[report.nodeid.rsplit("::", 1)[-1]] = entry
                if key == RECORD_PROPERTY:
                    self.entries.append(entry)
                    self.records.append(Record.from_json(entry["extra_info"], entry["name"], entry["group"],
                                                         entry["params"]))

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)  # before pytest-benchmark's finish() compares
    def pytest_sessionfinish(self, session: pytest.Session):
        drop_incomparable(self.config)
        yield

    def in_grid_order(self) -> list[Record]:
        order = getattr(self.config, "fitbench_order", None) or self.positions  # the latter under xdist
        return sorted(self.records, key=lambda record: order.get(record.name, len(order)))


def session_run(config: pytest.Config) -> Run:
    """The session's own results as a Run (the runner's per-epoch clock; no JSON needed)."""
    return Run("this session", config.pluginmanager.get_plugin("fitbench-records").in_grid_order(),
               devices.machine_info())


def measured_peaks(config: pytest.Config) -> dict[str, dict[str, float]]:
    """{kind: {precision: GFLOP/s}} of the session's devices, measured once per machine
    fingerprint (pytest's cache) or again with --remeasure-peak; under pytest-xdist the
    controller only reads the cache (its workers may be training: no measurement there could be
    a peak). {} when the session ran no benchmark, and in a cluster's workers other than the chief."""
    if getattr(config, "fitbench_peaks", None) is not None:
        return config.fitbench_peaks
    if not is_chief(config):  # a cluster's other worker writes no results: nothing to measure for
        return {}
    kinds = getattr(config, "fitbench_peak_kinds", None)
    controller = kinds is None  # an xdist controller collects nothing: the kinds its records ran on
    if controller:
        kinds = sorted({record.device for record in config.pluginmanager.get_plugin("fitbench-records").records})
    found = []
    for kind in kinds:
        if kind == "tpu" and not devices.tpu_address(config.getoption("tpu")):
            continue
        try:
            found.append(devices.resolve(kind, config.getoption("tpu")))
        except devices.DeviceUnavailable:
            continue
    store = getattr(config, "cache", None)  # None under -p no:cacheprovider: measured each session
    cache = store.get(peak.CACHE_KEY, {}) if store is not None else {}
    if controller:
        return peak.peaks(found, cache, measure=False)[0]
    if not found:
        config.fitbench_peaks = {}
        return config.fitbench_peaks
    config.fitbench_peaks, cache = peak.peaks(found, cache, config.getoption("remeasure_peak"))
    if store is not None:
        store.set(peak.CACHE_KEY, cache)
    return config.fitbench_peaks


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info.update(devices.machine_info())


def records_by_name(output_json: dict, records: list[Record]) -> list[Record | None]:
    """The record of each of the JSON's benchmarks, in its order (None for a foreign one)."""
    by_name = {record.name: record for record in records}
    return [by_name.get(bench.get("name")) for bench in output_json.get("benchmarks", [])]


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    """The run's own section: schema, profile, CPU replicas, whether it is partial, the device
    comparison, and the records of tests that ended before a timed round (a divergence in
    epoch 1), which pytest-benchmark has no entry for."""
    records, names = [], set()
    for bench in output_json.get("benchmarks", []):
        names.add(bench.get("name"))
        try:
            records.append(Record.from_json(bench.get("extra_info") or {}, bench.get("name", ""),
                                            bench.get("group"), bench.get("params")))
        except RecordError:
            continue  # not a fitbench benchmark
    collected = config.pluginmanager.get_plugin("fitbench-records")
    without_rounds = [entry for entry in (collected.entries if collected else []) if entry["name"] not in names]
    output_json["fitbench"] = {
        "schema": SCHEMA_VERSION,
        # Which fitbench measured (fitbench ab runs two checkouts): its version and where it was imported from.
        "version": fitbench.__version__,
        "package": str(Path(fitbench.__file__).resolve().parent),
        "profile": config.getoption("profile"),
        "cpu_replicas": config.getoption("cpu_replicas"),
        "cluster": (config.fitbench_cluster.describe() if getattr(config, "fitbench_cluster", None) else None),
        # True while the session runs (fitbench.durable rewrites the file after each test) and
        # when it was interrupted: the file holds the benchmarks that finished.
        durable.PARTIAL_KEY: bool(getattr(config, "fitbench_interrupted", False)),
        "device_comparison": [s.as_dict() for s in device_speedups(records)],
        "variant_speedups": [s.as_dict() for s in variant_speedups(records)],
        PEAK_KEY: measured_peaks(config),
        # The session's hardware state: driver, GPU power limits and clocks, CPU governor (fitbench.hardware).
        "hardware": hardware.sampler("gpu" in config.fitbench_devices).session(),
        RECORDS_WITHOUT_ROUNDS: without_rounds,
    }
    # Per benchmark, for readers of the JSON: efficiency against this machine's peak.
    measured = output_json["fitbench"][PEAK_KEY]
    for bench, record in zip(output_json.get("benchmarks", []), records_by_name(output_json, records), strict=True):
        if record is not None:
            derived = bench["extra_info"].setdefault("derived", {})
            derived["efficiency"] = efficiency(record, measured)


# --- --benchmark-compare: like with like --------------------------------------------------------

def _session_matches(run: Run, config: pytest.Config) -> bool:
    """Whether a saved run measured what this session will: its profile, and its CPU replicas."""
    profile, replicas = config.getoption("profile"), config.getoption("cpu_replicas")
    return bool(run.records) and all(
        r.profile == profile and (r.device != "cpu" or r.measurement.replicas == replicas) for r in run.records)


def name_saved_run(config: pytest.Config) -> None:
    """--benchmark-autosave names files NNNN_<commit>_<date>[_uncommitted-changes]_<profile>.json, so that
    `pytest-benchmark list` and `compare` tell a smoke run from a default one."""
    tag = config.getoption("benchmark_autosave", None)
    if tag:
        replicas = config.getoption("cpu_replicas")
        config.option.benchmark_autosave = f"{tag}_{config.getoption('profile')}" + (
            f"_cpux{replicas}" if replicas > 1 else "")


def choose_compared_run(config: pytest.Config) -> list[str]:
    """`--benchmark-compare` without a number: the newest saved run *of this measurement* (profile,
    CPU replicas), not just the newest; none: refuse, in one line. Returns lines for the header."""
    if config.getoption("benchmark_compare", None) is not True:
        return []
    storage = str(config.getoption("benchmark_storage"))
    if "://" in storage and not storage.startswith("file://"):
        return []  # elasticsearch: pytest-benchmark's own choice; measurements are still checked per benchmark
    from pytest_benchmark.utils import get_machine_id

    directory = Path(storage.removeprefix("file://")) / get_machine_id()
    skipped = []
    for path in sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.json"), reverse=True):
        try:
            run = load_run(path)
        except NotBenchmarkJSON as error:
            skipped.append(f"{path.name} ({error})")
            continue
        if _session_matches(run, config):
            config.option.benchmark_compare = str(path)
            return [f"--benchmark-compare: {path.name}, the newest saved run of profile "
                    f"{config.getoption('profile')}" + (f"; skipped newer {', '.join(skipped)}" if skipped else "")]
        profiles = sorted({r.profile for r in run.records})
        skipped.append(f"{path.name} (profile {', '.join(profiles)})")
    config.option.benchmark_compare = []
    config.option.benchmark_compare_fail = []
    return [f"--benchmark-compare refused: no saved run of profile {config.getoption('profile')} "
            f"(cpu replicas {config.getoption('cpu_replicas')}) in {directory}"
            + (f" (found {', '.join(skipped)})" if skipped else "")
            + "; save one first with --benchmark-autosave, or name a run: --benchmark-compare=NUM"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Before the terminal summary (printed by the terminal reporter's wrapper of this hook).
    if evaluate_gate(session.config) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def drop_incomparable(config: pytest.Config) -> None:
    """Take out of pytest-benchmark's comparison every saved benchmark that measured something
    else than this session's benchmark of the same name, and say so."""
    session = getattr(config, "_benchmarksession", None)
    config.fitbench_not_compared = notes = []
    if session is None or not session.compared_mapping:
        return
    for path, mapping in session.compared_mapping.items():
        for bench in session.benchmarks:
            saved = mapping.get(bench.fullname)
            if saved is None or not bench.extra_info:
                continue
            try:
                mine = Record.from_json(bench.extra_info, bench.name)
                theirs = Record.from_json(saved.get("extra_info") or {}, saved.get("name", ""))
                differences = theirs.measurement.differences(mine.measurement)
            except RecordError as error:
                differences = [str(error)]
            if differences:
                del mapping[bench.fullname]
                notes.append(f"not compared with {Path(str(path)).name}: {bench.name}: " + "; ".join(differences))


# --- the gate inside pytest: --gate BASELINE -----------------------------------------------------

def configure_gate(config: pytest.Config) -> None:
    """Read and check --gate's files and the gate's options now, before any training."""
    config.fitbench_gate = None
    config.fitbench_gate_baseline = []
    paths = config.getoption("gate") or []
    try:
        config.fitbench_gate_settings = GateSettings.read(config.getoption, "gate-")
        config.fitbench_gate_baseline = [load_run(path) for path in paths]
    except (NotBenchmarkJSON, ValueError) as error:
        raise pytest.UsageError(f"--gate: {error}") from error


def evaluate_gate(config: pytest.Config) -> bool:
    """Gate the session against --gate; True when the gate fails (or cannot run)."""
    baseline = config.fitbench_gate_baseline
    if not baseline or hasattr(config, "workerinput"):
        return False  # xdist workers hold part of the records; the controller gates them all
    candidate = session_run(config)
    if not candidate.records:
        return False
    try:
        config.fitbench_gate = gate.compare(baseline, [candidate], config.fitbench_gate_settings)
    except (gate.MachineMismatch, gate.SoftwareMismatch, gate.NothingComparable) as error:
        config.fitbench_gate = error
        return True
    return bool(config.fitbench_gate.failures)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    write = terminalreporter.write_line
    for note in [*config.fitbench_compare_notes, *getattr(config, "fitbench_not_compared", [])]:
        write(f"fitbench: {note}", yellow=True)
    records = config.pluginmanager.get_plugin("fitbench-records").in_grid_order()
    if records:
        terminalreporter.section("fitbench summary")
        left_out = getattr(config, "fitbench_left_out", "")
        write(f"profile {config.getoption('profile')}; {format.SUMMARY_LEGEND}" + (f"; {left_out}" if left_out else ""))
        shared = max(record.measurement.concurrent for record in records)
        if shared > 1:
            write(f"{shared} trainings shared this machine at once (pytest-xdist): their times are not "
                  "comparable with a serial run's, and the gate treats them as another measurement")
        speedups = device_speedups(records)
        for line in format.summary_lines(records, speedups, measured_peaks(config)):
            write(line)
        variants = format.variant_lines(records)
        if variants:
            write("")
            for line in variants:
                write(line)
        if speedups:
            write("")
            write("device comparison (per training sample, same global batch size):")
            for speedup in speedups:
                write(f"  {speedup.describe()}")
    ring = turns.current()
    if ring is not None:
        write("")
        write(f"interleaved: session {ring.index + 1} of {ring.size} in ring {ring.ring_id}"
              + (f"; {ring.broken}" if ring.broken else ""))
    report_gate(config, terminalreporter)


def report_gate(config: pytest.Config, terminalreporter) -> None:
    outcome = config.fitbench_gate
    if outcome is None:
        return
    write = terminalreporter.write_line
    failed = isinstance(outcome, Exception) or bool(outcome.failures)
    terminalreporter.section("fitbench gate", red=failed, bold=failed)
    if isinstance(outcome, Exception):
        write(f"ERROR: the gate could not run: {outcome}")
        return
    write(f"alpha {outcome.alpha} (Holm over the benchmarks compared)")
    for line in [*format.verdict_lines(outcome), *format.failure_lines(outcome)]:
        write(line)
