"""Process supervision, written once: the rings (fitbench.processes.turns), the local workers
(fitbench.processes.launch) and `fitbench ab` start their sessions as process groups and end
them the same way; a session ends on SIGTERM as it does on Ctrl-C.

Each child gets its own process group (a session and anything its shell started end
together). Ending a group is SIGCONT (a stopped process must run to end), SIGTERM (a pytest
session then ends as with Ctrl-C, saving what it finished), and SIGKILL once the grace period
is over; it returns when no process of the group is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

# The signals a supervisor turns into KeyboardInterrupt; blocked while it starts a child.
SUPERVISOR_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def start(command: str | Sequence[str], preexec: Callable[[], None] | None = None,
          started: Callable[[subprocess.Popen], None] | None = None, **popen: Any) -> subprocess.Popen:
    """Start `command` in a process group of its own, so that a signal sent while it starts is
    neither lost nor swallowed. Between fork and exec a child still has its parent's Python
    handlers, which only set a flag no one reads there: a SIGTERM arriving then would vanish and
    the child would outlive its supervisor's end (a Ctrl-C under load did hang the ring until
    the grace period was over). So the supervisor blocks its signals while it forks; the child
    sets them back to their defaults, then unblocks them (a pending one then ends it), then runs
    `preexec`; the supervisor's own pending signal arrives after `started` has recorded the child
    (so that the KeyboardInterrupt it raises never loses a running child)."""
    def child() -> None:
        for sig in SUPERVISOR_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SUPERVISOR_SIGNALS)
        if preexec is not None:
            preexec()

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS)
    try:
        process = subprocess.Popen(command, start_new_session=True, preexec_fn=child, **popen)
        if started is not None:
            started(process)
        return process
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to the process group `pid` leads (nothing if it is gone)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(process: subprocess.Popen) -> bool:
    """Whether any process of `process`'s group is left (reaping `process` itself)."""
    process.poll()
    try:
        os.killpg(process.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_group(process: subprocess.Popen, timeout: float) -> bool:
    """Wait up to `timeout` seconds for the whole group to end; whether it did."""
    deadline = time.monotonic() + timeout
    while group_alive(process):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def end_groups(processes: Sequence[subprocess.Popen], grace: float) -> None:
    """End these process groups: SIGCONT and SIGTERM now, SIGKILL to what is left after
    `grace` seconds; returns when none of their processes is left."""
    for process in processes:
        signal_group(process.pid, signal.SIGCONT)
        signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        if not wait_group(process, max(0.0, deadline - time.monotonic())):
            signal_group(process.pid, signal.SIGKILL)
            wait_group(process, grace)
        process.poll()


def raise_interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


@contextlib.contextmanager
def interrupted_by(*signals: signal.Signals) -> Iterator[None]:
    """Within the block, these signals raise KeyboardInterrupt (a supervisor then ends its
    children as on Ctrl-C); the previous handlers come back after it."""
    previous = {sig: signal.signal(sig, raise_interrupt) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def sigterm_as_interrupt() -> None:
    """For the rest of the process, SIGTERM ends it as Ctrl-C does (main thread only: Python's
    signal rule)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_interrupt)


def end_with_parent() -> bool:
    """This process is killed when its parent dies (Linux: prctl PR_SET_PDEATHSIG), so that a
    worker whose controller was killed does not train on alone. False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, signal.SIGKILL) == 0 and os.getppid() != 1  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False
