"""A crash fails one test, by default: a benchmark session trains in one pytest-xdist worker.

A training process that dies (a native abort, a segmentation fault, the kernel's OOM killer)
cannot report its own failure, and in a plain pytest session it takes the session with it. So a
session that collects benchmark files (files that export an ``EXPERIMENT``) runs as if ``-n 1``
had been given: one pytest-xdist worker trains each test in turn, in the collection's order, and
when it dies xdist fails the test it was running and starts a new worker for the rest
(`crashes` says how it died). ``--no-isolate`` (or ``-n 0``, ``-s``, ``--pdb``, ...: see
`why_not_isolated`) keeps the session in one process, and says so in its header; the user's
own ``-n N`` is left as it is.

One worker trains at a time, so its timings are as valid as a plain session's: pytest-benchmark,
which disables itself under xdist, is turned back on in the worker (which saves, compares and
prints nothing) and in the controller, which gets each benchmark pytest-benchmark measured in
the worker through the test's report and saves, compares and prints them as usual.
"""

from __future__ import annotations

import ast
import fnmatch
import glob
import os
from pathlib import Path
from typing import Any

import pytest

from fitbench.measure import startup
from fitbench.measure.devices import tpu_address
from fitbench.plugin.session import state
from fitbench.processes import cluster as clusters
from fitbench.processes import groups, turns

# In a test report's user_properties: the worker's pytest-benchmark entry for that test.
BENCHMARK_PROPERTY = "pytest-benchmark"
# Each crash starts a new worker; xdist's default (4 per worker) would end the session after the 4th.
MAX_WORKER_RESTARTS = "1000"
NO_BENCHMARKS = "no benchmark file is collected"
XDIST_CHOSEN = "-n N was given"
IN_WORKER = "this is a pytest-xdist worker"
# Why a session was not isolated, for its header (set before the options are parsed).
REASON_KEY = pytest.StashKey[str]()


def sole_worker(config: pytest.Config) -> bool:
    """Whether this process is the one pytest-xdist worker of an isolated (-n 1) session."""
    return getattr(config, "workerinput", {}).get("workercount") == 1


def isolating_controller(config: pytest.Config) -> bool:
    """Whether this process is the controller of a session with one pytest-xdist worker."""
    return not hasattr(config, "workerinput") and config.getoption("numprocesses", None) == 1


def trains_alone(config: pytest.Config) -> bool:
    """Whether this process trains the session's tests one at a time, with nothing else training:
    a plain session, or the one worker of an isolated one (not an xdist controller)."""
    if hasattr(config, "workerinput"):
        return sole_worker(config)
    return not config.getoption("numprocesses", None)


def holds_experiment(path: Path) -> bool:
    """Whether the Python file assigns EXPERIMENT at module level (a fitbench benchmark file)."""
    try:
        source = path.read_bytes()
        if b"EXPERIMENT" not in source:
            return False
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return False
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        if any(isinstance(target, ast.Name) and target.id == "EXPERIMENT" for target in targets):
            return True
    return False


def finds_benchmarks(paths: list[Path], patterns: list[str], skip_dirs: list[str]) -> bool:
    """Whether any test file (by pytest's python_files patterns) under `paths` is a benchmark file."""
    for path in paths:
        if path.is_file():
            if holds_experiment(path):
                return True
            continue
        for directory, subdirs, files in os.walk(path):
            subdirs[:] = [name for name in subdirs
                          if not any(fnmatch.fnmatch(name, pattern) for pattern in skip_dirs)]
            for name in files:
                if name.endswith(".py") and any(fnmatch.fnmatch(name, pattern) for pattern in patterns) \
                        and holds_experiment(Path(directory, name)):
                    return True
    return False


def session_paths(early_config: pytest.Config) -> list[Path]:
    """The paths the session will collect: its arguments (node ids cut to their file), else the
    ini's testpaths, else the current directory (as pytest chooses them)."""
    arguments = [arg.split("::", 1)[0] for arg in early_config.known_args_namespace.file_or_dir]
    if arguments:
        return [Path(arg) for arg in arguments]
    root = early_config.rootpath
    found = [Path(match) for pattern in early_config.getini("testpaths")
             for match in sorted(glob.glob(str(root / pattern), recursive=True))]
    return found or [Path.cwd()]


def why_not_isolated(early_config: pytest.Config) -> str | None:
    """Why this session keeps its tests in its own process, or None to isolate them."""
    options = early_config.known_args_namespace
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return IN_WORKER
    if getattr(options, "numprocesses", None) not in (None, 0):
        return XDIST_CHOSEN  # the user's own workers: xdist replaces a crashed one
    patterns = early_config.getini("python_files")
    if not finds_benchmarks(session_paths(early_config), patterns, early_config.getini("norecursedirs")):
        return NO_BENCHMARKS
    checks = (
        (not early_config.pluginmanager.hasplugin("xdist"), "pytest-xdist is not loaded"),
        (getattr(options, "no_isolate", False), "--no-isolate"),
        (getattr(options, "numprocesses", None) == 0, "-n 0"),
        (getattr(options, "dist", "no") != "no" or getattr(options, "tx", None), "--dist or --tx was given"),
        (getattr(options, "capture", "fd") == "no", "-s: output is shown only from the session's own process"),
        (getattr(options, "usepdb", False) or getattr(options, "trace", False), "--pdb or --trace"),
        (getattr(options, "collectonly", False), "--collect-only"),
        (getattr(options, "help", False) or getattr(options, "version", False), "--help or --version"),
        # fitbench ab / interleave: the session takes its turns in a ring, as one process.
        (bool(os.environ.get(turns.ENV)), "fitbench interleave"),
        # A cluster's workers train in step, each as one process (fitbench workers, TF_CONFIG, Slurm).
        (in_cluster(getattr(options, "cluster", "auto")), "a cluster worker"),
        # A TPU runtime serves one process, and a TPU the user named is resolved before anything trains.
        ("tpu" in getattr(options, "devices", "") and tpu_address(getattr(options, "tpu", None)) is not None,
         "a TPU is named"),
    )
    for applies, reason in checks:
        if applies:
            return reason
    return None


def in_cluster(source: str) -> bool:
    try:
        return clusters.detect(source) is not None
    except clusters.ClusterError:
        return True  # the session refuses it, in its own process, with the reason


def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    # Before the options are parsed for good, so xdist's own options do the rest (pytest's
    # documented way to default -n: the hook's example).
    reason = why_not_isolated(early_config)
    threads = getattr(early_config.known_args_namespace, "threads", 0) or 0
    try:
        startup.check_threads(threads)  # here too: an isolated session's controller starts no TensorFlow
        if reason is not None or os.environ.get("PYTEST_XDIST_WORKER"):
            # This process trains: TensorFlow starts now, its C++ start-up lines filtered and its
            # thread pools sized, before a conftest imports it. An isolated session's controller
            # never imports it.
            startup.load(threads)
    except startup.ThreadsError as error:
        raise pytest.UsageError(str(error)) from error
    if reason is not None:
        early_config.stash[REASON_KEY] = reason
    else:
        restarts = [] if "--max-worker-restart" in " ".join(args) else ["--max-worker-restart", MAX_WORKER_RESTARTS]
        args[:] = [*args, "-n", "1", *restarts]


def header_note(config: pytest.Config) -> str | None:
    """For a benchmark session that trains in its own process: that a crash would end it, and why."""
    reason = config.stash.get(REASON_KEY, None)
    if reason is None or reason in (NO_BENCHMARKS, XDIST_CHOSEN, IN_WORKER):
        return None
    return f"trains in this process ({reason}): a native crash or the OOM killer ends the session"


class ReportedBenchmark:
    """A benchmark pytest-benchmark measured in the worker, as the controller's pytest-benchmark
    session uses its own (save, compare, table): the same fields and `as_dict`."""

    has_error = False

    def __init__(self, entry: dict[str, Any]):
        self.entry = entry
        for key in ("group", "name", "fullname", "params", "param", "extra_info"):
            setattr(self, key, entry.get(key))

    def __bool__(self) -> bool:
        return bool(self.entry.get("stats"))

    def __getitem__(self, key: str) -> Any:  # pytest-benchmark's --benchmark-compare-fail reads stats so
        return self.entry["stats"][key]

    def as_dict(self, include_data: bool = True, flat: bool = False, stats: bool = True,
                cprofile: Any = None) -> dict[str, Any]:
        result = {key: value for key, value in self.entry.items() if key != "stats"}
        if stats:
            numbers = dict(self.entry["stats"])
            if not include_data:
                numbers.pop("data", None)
            if flat:
                result.update(numbers)
            else:
                result["stats"] = numbers
        return result


def benchmark_entry(item: pytest.Item) -> dict[str, Any] | None:
    """In the sole worker, the test's pytest-benchmark entry (None when it has no timed round)."""
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    measured = getattr(fixture, "stats", None)  # pytest-benchmark's Metadata: what its session keeps
    if measured is None or not measured or fixture.has_error:
        return None
    return measured.as_dict(include_data=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    benchmarks = getattr(config, "_benchmarksession", None)
    if benchmarks is None or not (sole_worker(config) or isolating_controller(config)):
        return
    if benchmarks.xdist_warning:  # disabled only because xdist is active: one worker trains at a time
        benchmarks.disabled = benchmarks.xdist_warning = False
    if sole_worker(config):  # the controller saves, compares and prints
        benchmarks.json = benchmarks.save = benchmarks.autosave = None
        benchmarks.histogram = None
        benchmarks.compare_fail = []
        benchmarks.compared_mapping = {}


CONTROLLER_PLUGIN = "fitbench-isolated-controller"
WORKER_PLUGIN = "fitbench-isolated-worker"


def finish(session: pytest.Session) -> None:
    """The isolation's part of the session's end, before pytest-benchmark saves (fitbench.plugin.finish):
    the worker hands over what the controller needs, the controller keeps pytest's status."""
    for name in (WORKER_PLUGIN, CONTROLLER_PLUGIN):
        plugin = session.config.pluginmanager.get_plugin(name)
        if plugin is not None:
            plugin.finish(session)


class Deselected:
    """A test the worker deselected, for the controller's count (it collects nothing itself)."""

    def __init__(self, nodeid: str):
        self.nodeid = nodeid


class IsolatedController:
    """Registered on the controller of an isolated session, so that it ends as a plain session
    would: each benchmark its worker measured joins the controller's pytest-benchmark session;
    the tests the worker deselected are counted; a collection error ends it with pytest's
    status for that (2), not xdist's (1)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.collection_failed = False
        self.deselected_counted = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            for key, entry in report.user_properties:
                if key == BENCHMARK_PROPERTY:
                    self.config._benchmarksession.benchmarks.append(ReportedBenchmark(entry))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_failed = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
        if output and not self.deselected_counted:  # a new worker after a crash deselects them again
            self.deselected_counted = True
            if output["deselected"]:
                self.config.hook.pytest_deselected(items=[Deselected(nodeid) for nodeid in output["deselected"]])
            state(self.config).left_out = output["left_out"]

    def finish(self, session: pytest.Session) -> None:
        if self.collection_failed and session.exitstatus == pytest.ExitCode.TESTS_FAILED:
            session.exitstatus = pytest.ExitCode.INTERRUPTED


WORKER_OUTPUT = "fitbench"  # in the worker's workeroutput: what it deselected, for the controller


class IsolatedWorker:
    """Registered on an isolated session's worker: what it deselected goes to the controller."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.deselected: list[str] = []

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected.extend(item.nodeid for item in items)

    def finish(self, session: pytest.Session) -> None:
        benchmarks = getattr(self.config, "_benchmarksession", None)
        if benchmarks is not None:
            benchmarks.benchmarks = []  # each was sent to the controller with its test's report
        self.config.workeroutput[WORKER_OUTPUT] = {"deselected": self.deselected,
                                                   "left_out": state(self.config).left_out}


def pytest_configure(config: pytest.Config) -> None:
    if isolating_controller(config):
        config.pluginmanager.register(IsolatedController(config), CONTROLLER_PLUGIN)
    elif sole_worker(config):
        groups.end_with_parent()  # a controller killed with SIGKILL takes its worker with it
        # The controller compares: the worker does not load the compared run as well (pytest-
        # benchmark loads it in its own trylast pytest_configure, after this one).
        config.option.benchmark_compare = None
        config.pluginmanager.register(IsolatedWorker(config), WORKER_PLUGIN)
