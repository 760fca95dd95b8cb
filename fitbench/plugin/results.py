"""Results: each test's record (to pytest-benchmark's extra_info and the session summary), what
pytest-benchmark writes about the machine and the run (its hooks), the matmul peaks, and
`--benchmark-compare` kept like with like."""

from __future__ import annotations

from pathlib import Path

import pytest

import fitbench
from fitbench.compare.results import (
    NotBenchmarkJSON,
    Run,
    device_speedups,
    efficiency,
    load_run,
    variant_speedups,
)
from fitbench.core import run_info
from fitbench.core.record import Record, RecordError
from fitbench.core.run_info import RunInfo
from fitbench.measure import devices, hardware, peak
from fitbench.plugin import isolation
from fitbench.plugin.session import (
    MACHINE_PROPERTY,
    PEAKS_PROPERTY,
    POSITION_PROPERTY,
    RECORD_PROPERTY,
    RESULT_KEY,
    UNFINISHED,
    state,
)


def is_chief(config: pytest.Config) -> bool:
    """Whether this session writes results: always, unless it is a cluster worker other than the chief."""
    cluster = state(config).cluster
    return cluster is None or cluster.is_chief


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # After the test body (its target check included), before its report is made: the record
    # goes to pytest-benchmark's extra_info and, as the test report's user property, to the
    # session summary (pytest-xdist sends user_properties from its workers to the controller).
    if call.when == "call" and RESULT_KEY in item.stash:
        record = item.stash[RESULT_KEY]
        info = record.to_json()
        benchmark = getattr(item, "funcargs", {}).get("benchmark")
        if benchmark is not None:
            benchmark.extra_info.pop(UNFINISHED, None)
            benchmark.extra_info.update(info)
        params = dict(getattr(getattr(item, "callspec", None), "params", {}))
        group = item.get_closest_marker("benchmark")
        item.user_properties.append((RECORD_PROPERTY, {
            "name": item.name, "fullname": item.nodeid, "group": group.kwargs.get("group") if group else None,
            "params": {key: str(value) for key, value in params.items()},
            "param": getattr(getattr(item, "callspec", None), "id", None), "extra_info": info}))
        # Its place in the collection (the grid's order), for the summary of an xdist controller.
        item.user_properties.append((POSITION_PROPERTY, state(item.config).order.get(item.name)))
    if call.when == "call" and isolation.sole_worker(item.config):
        # pytest-benchmark's own entry, for the controller's pytest-benchmark (save, compare, table).
        if (entry := isolation.benchmark_entry(item)) is not None:
            item.user_properties.append((isolation.BENCHMARK_PROPERTY, entry))
        # The peaks it measured (the controller's efficiency figures), even without a pytest cache.
        item.user_properties.append((PEAKS_PROPERTY, state(item.config).peaks))
        # Its software and accelerators: the controller, which holds no TensorFlow, writes them.
        item.user_properties.append((MACHINE_PROPERTY, {"machine_info": devices.machine_info(),
                                                        "hardware": hardware_state_of(item.config)}))
    return (yield)


def session_run(config: pytest.Config) -> Run:
    """The session's own results as a Run (the runner's per-epoch clock; no JSON needed)."""
    return Run("this session", state(config).records.in_grid_order(), machine_info_of(config))


def measured_peaks(config: pytest.Config) -> dict[str, dict[str, float]]:
    """{kind: {precision: GFLOP/s}} of the session's devices, measured once per machine
    fingerprint (pytest's cache) or again with --remeasure-peak; under pytest-xdist the
    controller only reads the cache (its workers may be training: no measurement there could be
    a peak). {} when the session ran no benchmark, and in a cluster's workers other than the chief."""
    if state(config).peaks is not None:
        return state(config).peaks
    if not is_chief(config) or isolation.isolating_controller(config):
        # A cluster's other worker writes no results; an isolated session's worker measured the
        # peaks and reported them (PEAKS_PROPERTY): its controller holds no TensorFlow.
        return {}
    kinds = state(config).peak_kinds
    controller = kinds is None  # an xdist controller collects nothing: the kinds its records ran on
    if controller:
        kinds = sorted({record.device for record in state(config).records.records})
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
        state(config).peaks = {}
        return state(config).peaks
    state(config).peaks, cache = peak.peaks(found, cache, config.getoption("remeasure_peak"))
    if store is not None:
        store.set(peak.CACHE_KEY, cache)
    return state(config).peaks


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info.update(machine_info_of(config))


def hardware_state_of(config: pytest.Config) -> dict:
    """The session's hardware state (fitbench.measure.hardware): in an isolated session's
    controller, the one its worker reported (its TensorFlow pools, its GPUs' clocks)."""
    reported = state(config).hardware_state
    if reported is not None and isolation.isolating_controller(config):
        return reported
    return hardware.sampler("gpu" in state(config).devices).session()


def machine_info_of(config: pytest.Config) -> dict:
    """The software and accelerators the session trained with: an isolated session's controller
    has them from its worker's reports (it holds no TensorFlow); any other process reads them."""
    reported = state(config).machine_info
    if reported is not None and isolation.isolating_controller(config):
        return reported
    return devices.machine_info()


def records_by_name(output_json: dict, records: list[Record]) -> list[Record | None]:
    """The record of each of the JSON's benchmarks, in its order (None for a foreign one)."""
    by_name = {record.name: record for record in records}
    return [by_name.get(bench.get("name")) for bench in output_json.get("benchmarks", [])]


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    """The run's own section: schema, profile, CPU replicas, whether it is partial, the device
    comparison, and the records of tests that ended before a timed round (a divergence in
    epoch 1), which pytest-benchmark has no entry for."""
    # A test interrupted mid-training has pytest-benchmark's rounds so far, and no record: not a result.
    output_json["benchmarks"] = [bench for bench in output_json.get("benchmarks", [])
                                 if not (bench.get("extra_info") or {}).get(UNFINISHED)]
    records, names = [], set()
    for bench in output_json.get("benchmarks", []):
        names.add(bench.get("name"))
        try:
            records.append(Record.from_json(bench.get("extra_info") or {}, bench.get("name", ""),
                                            bench.get("group"), bench.get("params")))
        except RecordError:
            continue  # not a fitbench benchmark
    collected = state(config).records
    without_rounds = [entry for entry in (collected.entries if collected else []) if entry["name"] not in names]
    info = RunInfo(
        # Which fitbench measured (fitbench ab runs two checkouts): its version and where it was imported from.
        version=fitbench.__version__,
        package=str(Path(fitbench.__file__).resolve().parent),
        profile=config.getoption("profile"),
        cpu_replicas=config.getoption("cpu_replicas"),
        cluster=state(config).cluster.describe() if state(config).cluster else None,
        partial=state(config).interrupted,
        device_comparison=[s.as_dict() for s in device_speedups(records)],
        variant_speedups=[s.as_dict() for s in variant_speedups(records)],
        peak_gflops=measured_peaks(config),
        hardware=hardware_state_of(config),
        records_without_rounds=without_rounds,
    )
    output_json[run_info.KEY] = info.to_json()
    # Per benchmark, for readers of the JSON: efficiency against this machine's peak.
    measured = info.peak_gflops
    for bench, record in zip(output_json.get("benchmarks", []), records_by_name(output_json, records), strict=True):
        if record is not None:
            derived = bench["extra_info"].setdefault("derived", {})
            derived["efficiency"] = efficiency(record, measured)


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
    """`--benchmark-compare` without a number: the newest complete saved run *of this measurement*
    (profile, CPU replicas), not just the newest; none: refuse, in one line. Returns lines for the header."""
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
        if run.partial:  # an interrupted session's run: not a baseline while a complete one may follow
            skipped.append(f"{path.name} (partial: its session was interrupted)")
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


def drop_incomparable(config: pytest.Config) -> None:
    """Take out of pytest-benchmark's comparison every saved benchmark that measured something
    else than this session's benchmark of the same name, and say so."""
    session = getattr(config, "_benchmarksession", None)
    state(config).not_compared = notes = []
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
