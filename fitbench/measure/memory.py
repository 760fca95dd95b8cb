"""Peak memory of one training run: the device's (where TensorFlow reports it) and the host's.

Device: ``tf.config.experimental.reset_memory_stats`` before and ``get_memory_info(...)['peak']``
after, on GPUs (and TPUs); TensorFlow does not track the CPU device, so it is None there.
Host: the peak resident set size (VmHWM), reset on Linux through /proc/self/clear_refs, so
each run reports its own peak and not the process's; where that reset is impossible the
process-lifetime peak (getrusage) is reported and marked as such.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

from fitbench.core import lazy
from fitbench.measure import startup

tf = lazy.module("tensorflow", startup.load)


STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _device_names(strategy: tf.distribute.Strategy) -> list[str]:
    """TensorFlow device names ('GPU:0', ...) the strategy trains on, CPUs excluded."""
    names = []
    for device in strategy.extended.worker_devices:
        spec = tf.DeviceSpec.from_string(device)
        if spec.device_type and spec.device_type != "CPU":
            names.append(f"{spec.device_type}:{spec.device_index or 0}")
    return names


def reset(strategy: tf.distribute.Strategy) -> bool:
    """Reset the peaks; True when the host peak could be reset (Linux)."""
    for name in _device_names(strategy):
        try:
            tf.config.experimental.reset_memory_stats(name)
        except (ValueError, tf.errors.OpError):
            pass
    try:
        CLEAR_REFS.write_text("5")  # "5" resets the peak RSS (VmHWM) of this process
        return True
    except OSError:
        return False


def host_peak_bytes() -> int:
    """VmHWM (peak RSS) from /proc/self/status, else getrusage's ru_maxrss."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def peaks(strategy: tf.distribute.Strategy, host_was_reset: bool) -> dict[str, int | bool | None]:
    """What goes into extra_info: device peak (sum over the strategy's devices) and host peak."""
    device_peak: int | None = None
    for name in _device_names(strategy):
        try:
            device_peak = (device_peak or 0) + int(tf.config.experimental.get_memory_info(name)["peak"])
        except (ValueError, tf.errors.OpError):
            pass
    return {
        "device_peak_memory_bytes": device_peak,
        "host_peak_rss_bytes": host_peak_bytes(),
        "host_peak_rss_is_per_test": host_was_reset,
    }


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_memory_dirs() -> list[Path]:
    """This process's memory cgroup directories, from /proc/self/cgroup (v2, then v1), and the
    root ones (inside a container, its own cgroup is the root)."""
    found = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            found.append(CGROUP_ROOT / path.lstrip("/"))
        elif "memory" in controllers.split(","):
            found.append(CGROUP_ROOT / "memory" / path.lstrip("/"))
    found += [CGROUP_ROOT, CGROUP_ROOT / "memory"]
    return [directory for directory in dict.fromkeys(found) if directory.is_dir()]


def _cgroup_value(names: tuple[str, ...], key: str | None = None) -> int | None:
    """The first readable number among the cgroup files `names` (or the `key` line in them)."""
    for directory in cgroup_memory_dirs():
        for name in names:
            try:
                text = (directory / name).read_text()
            except OSError:
                continue
            if key is None:
                text = text.strip()
                if text.isdigit() and int(text) < 1 << 60:  # v1 says "no limit" with a huge number
                    return int(text)
                continue
            for line in text.splitlines():
                field, _, value = line.partition(" ")
                if field == key and value.strip().isdigit():
                    return int(value)
    return None


def address_space_limit() -> int | None:
    """RLIMIT_AS (ulimit -v, prlimit --as) in bytes, if one is set."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def host_limit_bytes() -> int | None:
    """The memory limit this process runs under, if any: its cgroup's (v2, then v1), else RLIMIT_AS."""
    return _cgroup_value(("memory.max", "memory.limit_in_bytes")) or address_space_limit()


def oom_kills() -> int | None:
    """How many processes the kernel's OOM killer has ended in this process's memory cgroup so
    far (None where that is not readable)."""
    return _cgroup_value(("memory.events", "memory.oom_control"), key="oom_kill")


def gigabytes(value: int | None) -> str:
    """'3.1 GB', '0.95 GB' ('unknown' for None): memory figures in messages."""
    if value is None:
        return "unknown"
    return f"{value / 1e9:.{1 if value >= 1e9 else 2}f} GB"  # a limit of 0.95 GB is not "0.9 GB"


def out_of_memory_figures(strategy: tf.distribute.Strategy) -> str:
    """'device peak 7.9 GB, host peak RSS 3.1 GB, limit 4.0 GB': what fitbench knows when memory ran out."""
    figures = peaks(strategy, host_was_reset=False)
    parts = [f"host peak RSS {gigabytes(figures['host_peak_rss_bytes'])}",
             f"limit {gigabytes(host_limit_bytes()) if host_limit_bytes() else 'none set'}"]
    if figures["device_peak_memory_bytes"] is not None:
        parts.insert(0, f"device peak {gigabytes(figures['device_peak_memory_bytes'])}")
    return ", ".join(parts)
