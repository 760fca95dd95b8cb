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


def test_an_epoch_records_the_hosts_cpu_time_steal_and_other_busy_time(tmp_path, monkeypatch):
    """The process's own CPU time comes from getrusage; steal and the machine's busy time from
    /proc/stat (here a fake one that moves 1 s of steal and 3 s of busy time over the epoch)."""
    readings = iter([(1.0, 10.0), (1.0 + 3.0, 10.0 + 1.0)])  # (busy, steal) seconds since boot
    monkeypatch.setattr(hardware, "proc_stat_seconds", lambda path=None: next(readings))
    sampler = hardware.Sampler(gpus=False)
    sampler.start()
    sum(i * i for i in range(200_000))  # some CPU time of our own
    host = sampler.stop()["host"]
    assert host["cpu_seconds"] > 0 and host["cpu_seconds"] == pytest.approx(
        host["user_seconds"] + host["system_seconds"], abs=1e-3)
    assert host["steal_seconds"] == 1.0
    assert host["other_busy_seconds"] == pytest.approx(3.0 - host["cpu_seconds"], abs=1e-3)
    assert host["involuntary_switches"] >= 0 and host["cpus"] >= 1
    shares = hardware.noise_shares(2.0, {**host, "cpus": 2})
    assert shares["steal"] == 0.25  # 1 s of 2 s x 2 CPUs


def test_proc_stat_is_parsed_and_its_absence_is_said(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text("cpu  200 100 100 5000 50 10 40 30 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    hz = __import__("os").sysconf("SC_CLK_TCK")
    assert hardware.proc_stat_seconds(stat) == (450 / hz, 30 / hz)  # user+nice+system+irq+softirq; steal
    assert hardware.proc_stat_seconds(tmp_path / "none") is None
    monkeypatch.setattr(hardware, "PROC_STAT", tmp_path / "none")
    assert "not readable" in hardware.host_state()["steal_unavailable"]
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\ncpu MHz\t\t: 2000.0\nprocessor\t: 1\ncpu MHz\t\t: 3000.0\n")
    assert hardware.cpu_mhz(cpuinfo) == 2500.0 and hardware.cpu_mhz(tmp_path / "none") is None


def test_a_verdict_names_the_epochs_that_lost_the_machine_to_steal(tmp_path):
    base, cand = interleaved_runs(tmp_path, 1.0)
    document = json.loads(open(cand).read())
    for entry in document["benchmarks"]:
        epochs = entry["extra_info"]["epochs"]
        for epoch in epochs:
            epoch["hardware"] = {"host": {"steal_seconds": 0.0, "other_busy_seconds": 0.0, "cpus": 2}}
        for number, share in ((3, 0.18), (7, 0.22)):
            epochs[number - 1]["hardware"]["host"]["steal_seconds"] = share * epochs[number - 1]["seconds"] * 2
    open(cand, "w").write(json.dumps(document))
    comparison = gate.compare([load_run(base)], [load_run(cand)])
    for verdict in comparison.verdicts:
        assert verdict.machine_noise == "candidate epochs 7, 3 lost 22%, 18% of the machine to steal"
        assert verdict.machine_noise in verdict.note
