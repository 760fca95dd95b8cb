"""A training process that dies cannot report its own failure: a native abort (a TensorFlow
check that failed, a thread it could not create), a segmentation fault, or the kernel's OOM
killer's SIGKILL. Under pytest-xdist (a benchmark session's default of one worker, `isolation`)
the controller sees its worker go down, fails the test that worker was running, and starts a
new worker for the rest of the session. This plugin turns xdist's "worker crashed"
into a verdict that says how the process died and which memory limits were in force.

Restarts are bounded by what can still run: a worker that dies before it started any test
(while importing a benchmark file or a conftest; no model or dataset is built before its own
test, `collect.cached_work`) would die the same way in every new
worker, so the session ends there, in one line naming why, instead of replacing it again; a
worker that dies running a test fails that test, so the crashes can never outnumber the tests.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from fitbench.measure import memory
from fitbench.measure.memory import gigabytes

SIGNALS = {
    signal.SIGABRT: "a native abort: a check in TensorFlow failed, or a thread or an allocation it needed was refused",
    signal.SIGKILL: "the kernel's OOM killer, or a kill -9",
    signal.SIGSEGV: "a segmentation fault in native code",
    signal.SIGBUS: "a bus error in native code",
}


def exit_status(node: Any, wait_seconds: float = 10.0) -> int | None:
    """The crashed worker's exit status (negative: the signal that killed it), from execnet's
    popen gateway; None where that is not available."""
    popen = getattr(getattr(getattr(node, "gateway", None), "_io", None), "popen", None)
    if popen is None:
        return None
    try:
        return popen.wait(timeout=wait_seconds)
    except Exception:  # noqa: BLE001 - the verdict then says the status is unknown
        return None


def how_it_died(status: int | None) -> str:
    if status is None:
        return "died"
    if status < 0:
        try:
            sig = signal.Signals(-status)
        except ValueError:
            return f"was killed by signal {-status}"
        cause = SIGNALS.get(sig)
        return f"was killed by {sig.name}" + (f" ({cause})" if cause else "")
    return f"exited with status {status}"


def memory_clue(oom_kills_before: int | None, oom_kills_now: int | None, address_space: int | None,
                limit: int | None) -> str:
    """What the memory limits say about the crash, in one clause."""
    if oom_kills_before is not None and oom_kills_now is not None and oom_kills_now > oom_kills_before:
        return (f"out of memory: the kernel's OOM killer ended {oom_kills_now - oom_kills_before} process(es) in this "
                f"session's memory cgroup" + (f" (limit {gigabytes(limit)})" if limit else "")
                + "; give the job more memory or train a smaller batch")
    if address_space is not None:
        return (f"out of memory: an address-space limit of {gigabytes(address_space)} is set (ulimit -v, "
                "prlimit --as), and TensorFlow aborts when a thread or an allocation cannot get memory under it; "
                "raise or remove the limit")
    if limit is not None:
        return f"memory limit {gigabytes(limit)} (cgroup); the worker's own output above has the native error"
    return "no memory limit is set; the worker's own output above has the native error"


def worker_id(node: Any) -> str:
    return getattr(getattr(node, "gateway", None), "id", "the worker")


class CrashVerdicts:
    """Registered on pytest-xdist's controller: each crashed test's report says how and why, and a
    worker that died before it started any test ends the session instead of being replaced."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.oom_kills = memory.oom_kills()
        self.started: set[str] = set()  # the workers that started a test (its setup reported)

    def clue(self) -> str:
        clue = memory_clue(self.oom_kills, memory.oom_kills(), memory.address_space_limit(), memory.host_limit_bytes())
        self.oom_kills = memory.oom_kills()
        return clue

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup" and hasattr(report, "node"):
            self.started.add(worker_id(report.node))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        dsession = self.config.pluginmanager.getplugin("dsession")
        if error is None or worker_id(node) in self.started or dsession is None:
            return
        # Nothing ran: a new worker would die the same way, forever. xdist counts this crash after
        # this hook; at its maximum it starts no new worker, and shouldstop ends the session.
        dsession._max_worker_restart = dsession._failed_nodes_count
        dsession.shouldstop = (f"fitbench: the training process ({worker_id(node)}) {how_it_died(exit_status(node))} "
                               f"before it started any test (at collection or a test's setup; {self.clue()}); "
                               "a new worker would die the same way, so the session ends here: its output above "
                               "has the error")

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        node = getattr(report, "node", None)
        test = crashitem.rsplit("::", 1)[-1]
        if worker_id(node) not in self.started:
            report.longrepr = (f"not run: the training process ({worker_id(node)}) died before it started {test} "
                               "(see the session's last line)")
            return
        report.longrepr = (f"crashed: the training process ({worker_id(node)}) {how_it_died(exit_status(node))} "
                           f"while running {test}; {self.clue()}. The session goes on in a new worker.")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        config.pluginmanager.register(CrashVerdicts(config), "fitbench-crashes")
