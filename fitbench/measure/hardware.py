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

The driver version is part of the machine's software (`machine_info`): a new driver is
compared like a new TensorFlow. The session's power limits, clocks and governor go into the
run's fitbench section. Where a reading is not available the value is null and `unavailable`
says why. Which GPUs: those CUDA_VISIBLE_DEVICES names (indices or UUIDs), else all of NVML's.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

RAPL = Path("/sys/class/powercap/intel-rapl:0")
GOVERNOR = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")

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


class Sampler:
    """Reads the hardware on both sides of each timed epoch (`start`, then `stop`)."""

    def __init__(self, nvml: Any = None, gpus: bool = True):
        self.nvml, self.unavailable = load_nvml(nvml) if gpus else (None, "no GPU in this measurement")
        self.handles = visible_handles(self.nvml) if self.nvml is not None else []
        self._start: dict[str, Any] = {}

    def session(self) -> dict[str, Any]:
        """Once per session: the driver, each GPU's power limit and clocks, the CPU's governor."""
        state: dict[str, Any] = {"cpu": cpu_state()}
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
        """Right before a timed epoch."""
        self._start = self._counters()

    def stop(self) -> dict[str, Any]:
        """Right after it: what happened during the epoch ({} when nothing is readable)."""
        if not self._start:
            return {}
        end, begin = self._counters(), self._start
        self._start = {}
        epoch: dict[str, Any] = {}
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
