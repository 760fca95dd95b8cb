"""Test-only: `-p tests.plugins.controller_probe` writes, at the end of the session, what the
process that runs pytest's session (an isolated session's controller) holds: whether it imported
TensorFlow, and its peak resident memory (Linux), to the JSON file FITBENCH_PROBE names."""

from __future__ import annotations

import json
import os
import resource
import sys


def pytest_unconfigure(config):
    if hasattr(config, "workerinput") or not os.environ.get("FITBENCH_PROBE"):
        return
    with open(os.environ["FITBENCH_PROBE"], "w") as out:
        # VmHWM: this process image's peak resident memory (ru_maxrss would keep a big parent's
        # peak across fork and exec).
        peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        json.dump({"tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules,
                   "max_rss_mb": peak / 1024,
                   "workers_max_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}, out)
