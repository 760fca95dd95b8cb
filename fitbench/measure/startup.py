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


class ThreadsError(RuntimeError):
    """TensorFlow's thread pools cannot be sized as asked; the message says why and what to do."""


def load(threads: int = 0) -> ModuleType:
    """Import TensorFlow, size its intra- and inter-op thread pools to `threads` each (0: its own
    default), and list its physical devices (the step that probes CUDA), filtered."""
    check_threads(threads)
    if "tensorflow" in sys.modules and getattr(load, "done", False):
        set_threads(sys.modules["tensorflow"], threads)
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            import tensorflow as tf

            set_threads(tf, threads)
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


def check_threads(threads: int) -> None:
    """ThreadsError unless `threads` is a pool size (0: TensorFlow's default)."""
    if threads < 0:
        raise ThreadsError(f"--threads {threads}: give 1 or more threads (0: TensorFlow's default, one per core)")


def set_threads(tf: ModuleType, threads: int) -> None:
    """Both of TensorFlow's thread pools at `threads` (nothing for 0). They can only be sized
    before its runtime starts (tf.config.threading raises after), which ThreadsError explains."""
    threading = tf.config.threading
    if not threads or (threading.get_intra_op_parallelism_threads(),
                       threading.get_inter_op_parallelism_threads()) == (threads, threads):
        return
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as error:
        raise ThreadsError(f"--threads {threads}: TensorFlow had already started in this process ({error}); "
                           "something imported and ran it before fitbench's plugin: run without it, or "
                           "without --threads") from error
