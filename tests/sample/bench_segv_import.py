"""A benchmark file that kills a pytest-xdist worker with SIGSEGV while it collects (as a native
extension that crashes on import would): no worker can run anything, so the session must end
in one line instead of replacing workers forever. Run by tests/test_isolation.py."""

import os
import signal

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.kill(os.getpid(), signal.SIGSEGV)

EXPERIMENT = None  # a benchmark file (so the session is isolated) whose import never gets this far


def test_never_runs():
    raise AssertionError("collected in a worker that should have died")
