"""What the hardware was doing while it trained: GPU clocks, power, temperature, throttling and
energy through NVML (nvidia-ml-py, the `cuda` extra), the CPU's frequency governor and its
energy from RAPL where Linux lets us read them.

A throttled GPU runs the same code slower: a verdict that does not know it would call the
heat a regression. So every epoch carries what happened during it, read right before its
timed round starts and right after it ends (never inside it):

* NVML's cumulative counters, read on both sides of the epoch: energy (mJ, Volta and newer)
  and the time the clocks were held down for power or heat (violation time, ns). Their
  differences are the epoch's joules and its throttled milliseconds, with no sampling thread.
* Instantaneous readings at the epoch's end: SM and memory clocks, power draw, temperature,
  and the current clock-event (throttle) reasons.
* RAPL's package energy counter on the CPU (microjoules, wrapping at its range).
* The host's noise (`host`): the CPU time this process got (user and system, all its threads,
  getrusage), its involuntary context switches (the kernel took a core from it), the machine's
  steal time (a hypervisor ran another guest on our vCPUs) and the machine's busy time outside
  this process (other processes, interrupts), both from /proc/stat, and the CPU's clock where
  Linux shows it. On a shared VM these say why an epoch was slow when the code was not.

The driver version is part of the machine's software (`machine_info`): a new driver is
compared like a new TensorFlow. The session's power limits, clocks and governor go into the
run's fitbench section. Where a reading is not available the value is null and `unavailable`
says why. Which GPUs: those CUDA_VISIBLE_DEVICES names (indices or UUIDs), else all of NVML's.
"""

from __future__ import annotations

import functools
import math
import os
import resource
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RAPL = Path("/sys/class/powercap/intel-rapl:0")
GOVERNOR = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
PROC_STAT = Path("/proc/stat")
CPUINFO = Path("/proc/cpuinfo")
# An epoch that lost this much of the machine's time to steal, or to other processes, is named
# in a verdict (gate._machine_noise).
NOTABLE_SHARE = 0.05

# NVML's clock-event (throttle) reason bits (nvml.h: nvmlClocksEventReason*).
REASONS = {0x04: "power cap", 0x08: "hardware slowdown", 0x20: "thermal (software)", 0x40: "thermal (hardware)",
           0x80: "power brake"}
POLICIES = {"power": 0, "thermal": 1}  # NVML_PERF_POLICY_POWER, NVML_PERF_POLICY_THERMAL


def load_nvml(module: Any = None) -> tuple[Any, str]:
    """(pynvml, "") once NVML is initialised, else (None, why not)."""
    if module is None:
        try:
            import pynvml as module
        except ImportError:
            return None, "nvidia-ml-py is not installed (pip install 'fitbench[cuda]')"
    try:
        module.nvmlInit()
    except Exception as error:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no NVIDIA driver here
        return None, f"NVML unavailable ({error})"
    return module, ""


def visible_handles(nvml: Any) -> list[Any]:
    """NVML handles of the GPUs this process may use (CUDA_VISIBLE_DEVICES, else all)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
    handles = []
    for entry in filter(None, (part.strip() for part in visible.split(","))):
        if entry.isdigit():
            handles.append(nvml.nvmlDeviceGetHandleByIndex(int(entry)))
        else:
            handles.append(nvml.nvmlDeviceGetHandleByUUID(entry))
    return handles


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read(function, *args) -> Any:
    """An NVML reading, or None where the GPU does not support it."""
    try:
        return function(*args)
    except Exception:  # NVMLError_NotSupported and friends: that figure is null
        return None


def driver_version() -> str | None:
    """The NVIDIA driver's version, or None without one."""
    nvml, _ = load_nvml()
    return _text(_read(nvml.nvmlSystemGetDriverVersion)) if nvml is not None else None


@functools.cache
def sampler(gpus: bool) -> Sampler:
    """The session's sampler (NVML is initialised once)."""
    return Sampler(gpus=gpus)


def _rapl_microjoules() -> int | None:
    try:
        return int((RAPL / "energy_uj").read_text())
    except (OSError, ValueError):
        return None


def _rapl_range() -> int | None:
    try:
        return int((RAPL / "max_energy_range_uj").read_text())
    except (OSError, ValueError):
        return None


def cpu_state() -> dict[str, Any]:
    """The CPU's frequency governor and whether RAPL energy is readable (null with the reason)."""
    try:
        governor = GOVERNOR.read_text().strip()
    except OSError as error:
        governor = None
        why_governor = f"{GOVERNOR}: {error.strerror or error}"
    state: dict[str, Any] = {"governor": governor}
    if governor is None:
        state["governor_unavailable"] = why_governor
    if _rapl_microjoules() is None:
        state["rapl_unavailable"] = f"{RAPL / 'energy_uj'} is not readable here (no RAPL, or not permitted)"
    return state


def proc_stat_seconds(path: Path | None = None) -> tuple[float, float] | None:
    """(busy, steal) CPU seconds of the whole machine since boot, summed over its CPUs, from the
    `cpu` line of /proc/stat (user nice system idle iowait irq softirq steal ...); None where
    there is none (not Linux). Busy counts user, nice, system, irq and softirq (guest time is
    inside user)."""
    try:
        with open(path or PROC_STAT) as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    ticks = [int(value) for value in fields[1:9]]
    per_second = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq) / per_second, steal / per_second


def cpu_mhz(path: Path | None = None) -> float | None:
    """The mean clock of the CPUs as /proc/cpuinfo shows it now (a VM often shows its nominal
    clock only); None where it does not."""
    try:
        values = [float(line.split(":", 1)[1]) for line in (path or CPUINFO).read_text().splitlines()
                  if line.startswith("cpu MHz")]
    except (OSError, ValueError, IndexError):
        return None
    return round(sum(values) / len(values), 1) if values else None


# TensorFlow sizes a pool left at 0 from these variables when they hold a positive count
# (tensorflow/core/common_runtime/process_util.cc), so tf.config alone would say 0 for them.
POOL_VARIABLES = {"intra_op": "TF_NUM_INTRAOP_THREADS", "inter_op": "TF_NUM_INTEROP_THREADS"}


def pool_threads(tf: Any) -> dict[str, int]:
    """The threads of TensorFlow's intra- and inter-op pools as they were sized: by
    tf.config.threading (`--threads`), else by TF_NUM_*OP_THREADS, else 0 (its default, one per core)."""
    configured = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                  "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    return {pool: threads or environment_threads(POOL_VARIABLES[pool]) for pool, threads in configured.items()}


def environment_threads(variable: str) -> int:
    """A positive thread count from `variable`, else 0 (unset or not a count: TensorFlow ignores it)."""
    try:
        return max(int(os.environ.get(variable, "0")), 0)
    except ValueError:
        return 0


def host_state() -> dict[str, Any]:
    """Once per session: how many CPUs /proc/stat sums over, the cores and TensorFlow thread pools
    this session has, and why a host figure is null here."""
    state: dict[str, Any] = {"cpus": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        state["affinity"] = sorted(os.sched_getaffinity(0))  # the cores this session may run on
    import sys

    tf = sys.modules.get("tensorflow")  # read where it trains; never imported for this alone
    if tf is not None:  # the pools both sides of an A/B must size alike (0: TensorFlow's default)
        state["threads"] = pool_threads(tf)
    if proc_stat_seconds() is None:
        state["steal_unavailable"] = f"{PROC_STAT} is not readable (not Linux): steal and other busy time are null"
    if cpu_mhz() is None:
        state["cpu_mhz_unavailable"] = f"{CPUINFO} shows no 'cpu MHz' here"
    return state


def _host_counters() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    machine = proc_stat_seconds()
    return {"user": usage.ru_utime, "system": usage.ru_stime, "involuntary": usage.ru_nivcsw,
            "busy": None if machine is None else machine[0], "steal": None if machine is None else machine[1]}


def host_epoch(begin: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """What the host did over an epoch, from the counters on both sides of it."""
    user, system = end["user"] - begin["user"], end["system"] - begin["system"]
    noise: dict[str, Any] = {"cpu_seconds": round(user + system, 4), "user_seconds": round(user, 4),
                             "system_seconds": round(system, 4),
                             "involuntary_switches": end["involuntary"] - begin["involuntary"],
                             "steal_seconds": None, "other_busy_seconds": None, "cpus": os.cpu_count(),
                             "cpu_mhz": cpu_mhz()}
    if begin["busy"] is not None and end["busy"] is not None:
        noise["steal_seconds"] = round(end["steal"] - begin["steal"], 3)
        # /proc/stat counts in clock ticks (10 ms): a short epoch's figure is that coarse.
        noise["other_busy_seconds"] = round(max(0.0, end["busy"] - begin["busy"] - user - system), 3)
    return noise


def noise_shares(epoch_seconds: float, host: dict[str, Any]) -> dict[str, float]:
    """The shares of the machine's time (epoch seconds x its CPUs) that steal and other
    processes took during an epoch; {} when unknown."""
    if not host or not host.get("cpus") or epoch_seconds <= 0 or host.get("steal_seconds") is None:
        return {}
    capacity = epoch_seconds * host["cpus"]
    return {"steal": host["steal_seconds"] / capacity, "other": (host.get("other_busy_seconds") or 0.0) / capacity}


def median_share(epochs: Iterable[Any], causes: tuple[str, ...] = ("steal", "other")) -> float:
    """The median share of the machine that `causes` took over `epochs` (each with `seconds` and
    `hardware`; noise_shares), or NaN when the epochs do not say."""
    shares = [sum(share[cause] for cause in causes) for epoch in epochs
              if (share := noise_shares(epoch.seconds, epoch.hardware.get("host") or {}))]
    return statistics.median(shares) if shares else math.nan


class Sampler:
    """Reads the hardware on both sides of each timed epoch (`start`, then `stop`)."""

    def __init__(self, nvml: Any = None, gpus: bool = True):
        self.nvml, self.unavailable = load_nvml(nvml) if gpus else (None, "no GPU in this measurement")
        self.handles = visible_handles(self.nvml) if self.nvml is not None else []
        self._start: dict[str, Any] = {}

    def session(self) -> dict[str, Any]:
        """Once per session: the driver, each GPU's power limit and clocks, the CPU's governor."""
        state: dict[str, Any] = {"cpu": cpu_state(), "host": host_state()}
        if self.nvml is None:
            state["gpu_unavailable"] = self.unavailable
            return state
        state["driver"] = _text(_read(self.nvml.nvmlSystemGetDriverVersion))
        state["gpus"] = [{
            "name": _text(_read(self.nvml.nvmlDeviceGetName, handle)),
            "power_limit_watts": _milli(_read(self.nvml.nvmlDeviceGetEnforcedPowerLimit, handle)),
            "sm_clock_mhz": _read(self.nvml.nvmlDeviceGetClockInfo, handle, 1),  # NVML_CLOCK_SM
            "memory_clock_mhz": _read(self.nvml.nvmlDeviceGetClockInfo, handle, 2),  # NVML_CLOCK_MEM
            "temperature_c": _read(self.nvml.nvmlDeviceGetTemperature, handle, 0),  # NVML_TEMPERATURE_GPU
        } for handle in self.handles]
        return state

    def _counters(self) -> dict[str, Any]:
        counters: dict[str, Any] = {"rapl_uj": _rapl_microjoules()}
        for index, handle in enumerate(self.handles):
            counters[f"energy_mj_{index}"] = _read(self.nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
            for policy, code in POLICIES.items():
                status = _read(self.nvml.nvmlDeviceGetViolationStatus, handle, code)
                counters[f"{policy}_ns_{index}"] = None if status is None else status.violationTime
        return counters

    def start(self) -> None:
        """Right before a timed epoch (the host's counters last, nearest to the clock's start)."""
        self._start = self._counters()
        self._start["host"] = _host_counters()

    def stop(self) -> dict[str, Any]:
        """Right after it: what happened during the epoch ({} when nothing is readable)."""
        if not self._start:
            return {}
        host = _host_counters()  # first, nearest to the clock's end
        end, begin = self._counters(), self._start
        self._start = {}
        epoch: dict[str, Any] = {"host": host_epoch(begin["host"], host)}
        rapl = _difference(begin.get("rapl_uj"), end.get("rapl_uj"), _rapl_range())
        if rapl is not None:
            epoch["cpu_joules"] = rapl / 1e6
        if not self.handles:
            return epoch
        gpus = []
        for index, handle in enumerate(self.handles):
            energy = _difference(begin[f"energy_mj_{index}"], end[f"energy_mj_{index}"])
            reasons = _read(self.nvml.nvmlDeviceGetCurrentClocksEventReasons, handle)
            if reasons is None:
                reasons = _read(self.nvml.nvmlDeviceGetCurrentClocksThrottleReasons, handle)
            gpus.append({
                "joules": None if energy is None else energy / 1e3,
                "thermal_ms": _ms(_difference(begin[f"thermal_ns_{index}"], end[f"thermal_ns_{index}"])),
                "power_ms": _ms(_difference(begin[f"power_ns_{index}"], end[f"power_ns_{index}"])),
                "sm_clock_mhz": _read(self.nvml.nvmlDeviceGetClockInfo, handle, 1),
                "memory_clock_mhz": _read(self.nvml.nvmlDeviceGetClockInfo, handle, 2),
                "power_watts": _milli(_read(self.nvml.nvmlDeviceGetPowerUsage, handle)),
                "temperature_c": _read(self.nvml.nvmlDeviceGetTemperature, handle, 0),
                "reasons": [name for bit, name in REASONS.items() if reasons is not None and reasons & bit],
            })
        epoch["gpus"] = gpus
        joules = [gpu["joules"] for gpu in gpus]
        if None not in joules:
            epoch["gpu_joules"] = sum(joules)
        return epoch


def throttled(epoch: dict[str, Any]) -> str:
    """'thermal' or 'power' when a GPU's clocks were held down during the epoch, else ''."""
    for kind in ("thermal", "power"):
        for gpu in epoch.get("gpus", []):
            if (gpu.get(f"{kind}_ms") or 0) > 0 or any(kind in reason for reason in gpu.get("reasons", [])):
                return kind
    return ""


def _difference(before: int | None, after: int | None, wrap: int | None = None) -> int | None:
    if before is None or after is None:
        return None
    if after < before:
        return after + wrap - before if wrap else None  # a counter that wrapped (RAPL)
    return after - before


def _ms(nanoseconds: int | None) -> float | None:
    return None if nanoseconds is None else nanoseconds / 1e6


def _milli(value: int | None) -> float | None:
    return None if value is None else value / 1e3
