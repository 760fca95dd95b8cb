"""GPU and CPU state through a faked NVML: what each epoch records, the driver as software,
and a verdict on throttled epochs. Nothing here ran on a real GPU."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from fitbench.compare import gate
from fitbench.compare.results import load_run
from fitbench.core.record import Environment, Record
from fitbench.measure import hardware
from tests.helpers import interleaved_runs


class FakeNVML:
    """pynvml's calls as fitbench uses them, for `gpus` GPUs; GPU 1 runs hot (thermal slowdown)."""

    def __init__(self, gpus: int = 2, driver: bytes = b"550.54.15"):
        self.gpus, self.driver, self.calls = gpus, driver, 0
        self.energy = [0] * gpus  # mJ
        self.thermal = [0] * gpus  # ns

    def nvmlInit(self):
        pass

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlDeviceGetCount(self):
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, index):
        if index >= self.gpus:
            raise RuntimeError("NVMLError_InvalidArgument")
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return int(uuid.rsplit("-", 1)[1])

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA A100-SXM4-40GB"

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 400_000  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        self.energy[handle] += 150_000  # every read, 150 J later
        return self.energy[handle]

    def nvmlDeviceGetViolationStatus(self, handle, policy):
        if policy == 1 and handle == 1:
            self.thermal[handle] += 40_000_000  # 40 ms more held down
        return SimpleNamespace(referenceTime=0, violationTime=self.thermal[handle] if policy == 1 else 0)

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return {1: 1410, 2: 1215}[kind] - (300 if handle == 1 and kind == 1 else 0)

    def nvmlDeviceGetPowerUsage(self, handle):
        return 310_500  # mW

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 87 if handle == 1 else 64

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return 0x40 if handle == 1 else 0


def test_an_epoch_records_joules_throttled_time_clocks_and_reasons(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    sampler = hardware.Sampler(FakeNVML())
    sampler.start()
    epoch = sampler.stop()
    cool, hot = epoch["gpus"]
    assert cool == {"joules": 150.0, "thermal_ms": 0.0, "power_ms": 0.0, "sm_clock_mhz": 1410,
                    "memory_clock_mhz": 1215, "power_watts": 310.5, "temperature_c": 64, "reasons": []}
    assert hot["thermal_ms"] == 40.0 and hot["reasons"] == ["thermal (hardware)"] and hot["sm_clock_mhz"] == 1110
    assert epoch["gpu_joules"] == 300.0
    assert hardware.throttled(epoch) == "thermal" and hardware.throttled({"gpus": [cool]}) == ""
    assert sampler.stop() == {}  # nothing started: nothing to say


def test_the_session_names_the_driver_and_each_gpus_power_limit(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    state = hardware.Sampler(FakeNVML()).session()
    assert state["driver"] == "550.54.15" and len(state["gpus"]) == 2
    assert state["gpus"][0]["power_limit_watts"] == 400.0 and "governor" in state["cpu"]


@pytest.mark.parametrize("visible, expected", [("1", [1]), ("GPU-aaaa-0,GPU-bbbb-1", [0, 1]), ("", [])])
def test_only_the_gpus_cuda_may_use_are_read(monkeypatch, visible, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert hardware.visible_handles(FakeNVML()) == expected


def test_without_nvml_the_reason_is_said_and_epochs_carry_no_gpu_figures():
    nvml, why = hardware.load_nvml()  # this machine has no NVIDIA driver
    assert nvml is None and ("not installed" in why or "NVML unavailable" in why)
    sampler = hardware.Sampler()
    sampler.start()
    assert "gpus" not in sampler.stop()
    assert sampler.session()["gpu_unavailable"] == why


def test_a_new_driver_is_a_software_change_like_a_new_tensorflow():
    before = Environment.from_machine_info({"cpu_name": "x", "gpus": ["A100"], "nvidia_driver": "550.54.15"})
    after = Environment.from_machine_info({"cpu_name": "x", "gpus": ["A100"], "nvidia_driver": "555.42.02"})
    assert before.machine == after.machine and before.software != after.software
    assert "NVIDIA driver 555.42.02" in after.describe()


def test_epoch_hardware_survives_the_json_and_gives_samples_per_joule():
    from tests.helpers import make_record

    record = make_record("t[a]", epoch_seconds=[2.0, 1.0, 1.0], samples=1000)
    for epoch in record.epochs:
        epoch.hardware = {"gpu_joules": 250.0}
    again = Record.from_json(json.loads(json.dumps(record.to_json())), "t[a]")
    assert again.epochs[1].hardware == {"gpu_joules": 250.0}
    assert again.samples_per_joule == 4.0 and record.to_json()["derived"]["samples_per_joule"] == 4.0


def test_a_slowdown_in_throttled_epochs_is_named_not_called_a_code_regression(tmp_path):
    base, cand = interleaved_runs(tmp_path, 1.2)
    document = json.loads(open(cand).read())
    for entry in document["benchmarks"]:
        for epoch in entry["extra_info"]["epochs"][1:5]:
            epoch["hardware"] = {"gpus": [{"thermal_ms": 120.0, "reasons": ["thermal (hardware)"]}]}
    open(cand, "w").write(json.dumps(document))
    comparison = gate.compare([load_run(base)], [load_run(cand)])
    for verdict in comparison.verdicts:
        assert verdict.time == "inconclusive"
        assert "would be a regression, but thermal throttling in 4 of 11 candidate epochs" in verdict.note
