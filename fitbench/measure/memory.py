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

import tensorflow as tf

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


CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def host_limit_bytes() -> int | None:
    """The memory limit this process runs under, if any: cgroup (v2, then v1), else RLIMIT_AS."""
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 says "no limit" with a huge number
            return int(text)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def out_of_memory_figures(strategy: tf.distribute.Strategy) -> str:
    """'device peak 7.9 GB, host peak RSS 3.1 GB, limit 4.0 GB': what fitbench knows when memory ran out."""
    def gigabytes(value: int | None) -> str:
        return "unknown" if value is None else f"{value / 1e9:.1f} GB"

    figures = peaks(strategy, host_was_reset=False)
    parts = [f"host peak RSS {gigabytes(figures['host_peak_rss_bytes'])}",
             f"limit {gigabytes(host_limit_bytes()) if host_limit_bytes() else 'none set'}"]
    if figures["device_peak_memory_bytes"] is not None:
        parts.insert(0, f"device peak {gigabytes(figures['device_peak_memory_bytes'])}")
    return ", ".join(parts)
