"""Collection: parametrization over the selected devices and each experiment's grid, the
profile's subset, the peaks and epochs to come, and --variant applied to a case."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from fitbench.core.record import Record
from fitbench.measure import devices, flops
from fitbench.measure.experiments import Case
from fitbench.measure.flops import EpochWork
from fitbench.measure.workloads import Variant
from fitbench.plugin import isolation
from fitbench.plugin.results import measured_peaks
from fitbench.plugin.session import state
from fitbench.present import progress

UNUSED_FIXTURE = "Benchmark fixture was not used at all in this test!"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses `device` runs once per selected device, marked cpu/gpu/tpu; every
    test that takes `case` runs once per case of its module's EXPERIMENT, in the grid's order."""
    if "device" in metafunc.fixturenames:
        kinds = state(metafunc.config).devices
        params = [pytest.param(kind, marks=getattr(pytest.mark, kind), id=kind) for kind in kinds]
        metafunc.parametrize("device", params, indirect=True, scope="session")
    experiment = getattr(metafunc.module, "EXPERIMENT", None)
    if "case" not in metafunc.fixturenames or experiment is None:
        return
    problems = experiment.check()
    if problems:  # before anything trains: a collection error naming the file, one line each
        where = metafunc.definition.path.name
        pytest.fail("\n".join(f"{where}: EXPERIMENT {problem}" for problem in problems), pytrace=False)
    # Under --variant the id says so: its results never share a name with the plain run's.
    override = state(metafunc.config).variant
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
        if "train" in getattr(item, "fixturenames", ()):
            # `train` always runs the benchmark fixture; a test that failed before it did has its
            # own line saying why, so pytest-benchmark's warning would only be noise.
            item.add_marker(pytest.mark.filterwarnings(f"ignore:{UNUSED_FIXTURE}"))
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
        undivided = undivided_batch(config, experiment.resolve(case, profile, params.get("device", "cpu")),
                                    params.get("device", "cpu"))
        if undivided:  # known now: no need to start TensorFlow to say it
            item.add_marker(pytest.mark.skip(reason=undivided))
        kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
        cases = "1 case is" if len(left_out) == 1 else f"{len(left_out)} cases are"
        state(config).left_out = f"{cases} not in the {profile} profile's subset (deselected)"
    state(config).order = {item.name: index for index, item in enumerate(items)}


def pytest_collection_finish(session: pytest.Session) -> None:
    """At the start: the selected devices' matmul peaks; the epochs each selected test will
    train and, where an earlier session ran it, one epoch's work, for the session's time left
    (live progress). No user model or dataset is loaded here: that happens in each test."""
    kinds = {getattr(getattr(item, "callspec", None), "params", {}).get("device") for item in session.items
             if getattr(getattr(item, "module", None), "EXPERIMENT", None) is not None}
    state(session.config).peak_kinds = sorted(kind for kind in kinds if kind)
    if "tpu" in kinds:
        require_named_tpu(session.config)
    if state(session.config).peak_kinds and isolation.trains_alone(session.config):
        measured_peaks(session.config)
    session_progress = state(session.config).progress
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
            schedule = case.workload.schedule(profile, device)
            by_precision = (state(session.config).peaks or {}).get(device, {})
            gigaflops = by_precision.get(case.workload.variant.precision) or by_precision.get("float32")
            session_progress.pending[item.nodeid] = progress.Pending(
                schedule.epochs, cached_work(session.config, item.nodeid),
                peak=gigaflops * 1e9 if gigaflops else None)


def _work_key(config: pytest.Config, nodeid: str) -> str:
    digest = hashlib.sha1(f"{config.getoption('profile')}:{nodeid}".encode()).hexdigest()[:20]
    return f"fitbench/epoch-work/{digest}"


def cached_work(config: pytest.Config, nodeid: str) -> EpochWork | None:
    """One epoch's work of test `nodeid` under this profile, as an earlier session measured it
    (pytest's cache); None when none did (the time left then counts the session's mean epoch)."""
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    value = cache.get(_work_key(config, nodeid), None) if cache is not None else None
    try:
        return EpochWork(**value) if isinstance(value, dict) else None
    except TypeError:  # written by another fitbench version
        return None


def remember_work(config: pytest.Config, nodeid: str, record: Record) -> None:
    """Keep one epoch's work of the test that made `record`, for the next session's time left."""
    cache = getattr(config, "cache", None)
    if cache is not None and record.flops_per_sample:
        cache.set(_work_key(config, nodeid), dataclasses.asdict(flops.epoch_work(record)))


def require_named_tpu(config: pytest.Config) -> None:
    """A TPU the user named (--tpu, TPU_NAME, COLAB_TPU_ADDR) was meant to be used: if it
    cannot be reached, the session stops before any training, with the resolver's reason.
    With none named, TPU tests skip (the device fixture says why)."""
    named = devices.tpu_address(config.getoption("tpu"))
    if named is None or not isolation.trains_alone(config):
        return
    try:
        devices.resolve("tpu", config.getoption("tpu"))
    except devices.DeviceUnavailable as reason:
        raise pytest.UsageError(f"--tpu/TPU_NAME named a TPU that cannot be used: {reason}") from None


def undivided_batch(config: pytest.Config, case: Case | None, kind: str) -> str | None:
    """Why `case` cannot train on CPU replicas: its global batch does not divide over
    --cpu-replicas (the train fixture says the same for GPUs, whose count needs TensorFlow)."""
    replicas = config.getoption("cpu_replicas")
    if case is None or kind != "cpu" or replicas <= 1 or config.getoption("batch_per_worker", False):
        return None
    batch = case.workload.batch_size
    if batch % replicas == 0:
        return None
    return (f"global batch size {batch} does not divide over {replicas} replicas (--cpu-replicas {replicas}); "
            "use a replica count that divides it, such as 2 or 4")


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
    if variant.pipeline == "numpy" and state(config).cluster is not None:
        from fitbench.measure.runner import NUMPY_IN_CLUSTER

        return NUMPY_IN_CLUSTER
    slow = devices.slow_precision(kind, variant.precision)
    asked = any(setting.replace(" ", "").startswith("precision=") for setting in config.getoption("variant"))
    if slow and not (asked or config.getoption("slow_variants")):
        return f"{slow}; run it anyway with --slow-variants"
    return None
