"""Loading TensorFlow without its start-up noise, keeping its real errors.

TensorFlow's C++ side logs while it loads and first lists its devices, before its logging is
initialized, so `TF_CPP_MIN_LOG_LEVEL` does not filter those lines (absl's "All log messages
before absl::InitializeLog() ..." preamble, oneDNN and CPU-feature INFO lines), and on a machine
without an NVIDIA driver it logs `E... failed call to cuInit: ... (303)`, which a CPU user reads
as an error. `load()` runs that start-up with the process's stderr (file descriptor 2, where the
C++ side writes) going to a temporary file, then writes back every line except those: lines
below `TF_CPP_MIN_LOG_LEVEL` (2, errors and above, unless the user set it), the preamble, and
the cuInit failure when there is no NVIDIA driver to fail. Everything else, real errors
included, still reaches the terminal; if loading raises, everything is written back.
"""

from __future__ import annotations

import ctypes.util
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# absl's line prefix: severity, date and time (before its log is initialized, "0000 00:00:<epoch
# seconds>"), thread id, file:line]
LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]\s]+\] ")
PREAMBLE = "All log messages before absl::InitializeLog() is called are written to STDERR"
NO_DRIVER_CUINIT = "failed call to cuInit"


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver is installed, so that a cuInit failure would mean something."""
    return (Path("/proc/driver/nvidia").exists() or any(Path("/dev").glob("nvidia[0-9]*"))
            or ctypes.util.find_library("cuda") is not None)


def kept_lines(lines: Iterable[str], min_level: int, driver_present: bool) -> list[str]:
    """The start-up lines a user should see. A line without absl's prefix continues the record
    before it (the CPU-feature message spans two lines) and shares its fate."""
    kept, keeping = [], True
    for line in lines:
        match = LOG_LINE.match(line)
        if match:
            keeping = (SEVERITY[match.group(1)] >= min_level
                       and (driver_present or NO_DRIVER_CUINIT not in line))
        elif PREAMBLE in line:  # dropped itself; what follows it is judged on its own
            keeping = True
            continue
        if keeping:
            kept.append(line)
    return kept


def _min_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def load() -> ModuleType:
    """Import TensorFlow and list its physical devices (the step that probes CUDA), filtered."""
    if "tensorflow" in sys.modules and getattr(load, "done", False):
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            shown = lines if failed else kept_lines(lines, _min_level(), nvidia_driver_present())
            sys.stderr.write("".join(shown))
            sys.stderr.flush()
    load.done = True
    return tf
