"""Device resolution: CPU always, GPU and TPU absent here -> DeviceUnavailable with a reason."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf

from fitbench.measure import devices
from fitbench.measure.devices import DeviceUnavailable, UnknownDevice


def test_parse_kinds():
    assert devices.parse_kinds("cpu, GPU,cpu") == ["cpu", "gpu"]


@pytest.mark.parametrize("text", ["cpu,npu", "", " , "])
def test_unknown_device_names_the_choices(text):
    with pytest.raises(UnknownDevice, match="choose from cpu, gpu, tpu"):
        devices.parse_kinds(text)


def test_cpu_is_one_device_strategy():
    device = devices.resolve("cpu")
    assert isinstance(device.strategy, tf.distribute.OneDeviceStrategy)
    assert device.replicas == 1 and not device.is_tpu
    assert device.description


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU")
def test_gpu_absent_is_unavailable_with_reason():
    with pytest.raises(DeviceUnavailable, match="no GPU visible"):
        devices.resolve("gpu")


def test_tpu_absent_is_unavailable_with_reason(monkeypatch):
    for name in devices.TPU_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DeviceUnavailable, match=r"no TPU reachable \(ValueError.*--tpu NAME"):
        devices._resolve_tpu(None)


def test_tpu_local_without_tpu_is_unavailable():
    # A resolver for 'local' is created fine and fails at initialization (NotFoundError).
    with pytest.raises(DeviceUnavailable, match="TPU 'local' not reachable"):
        devices._resolve_tpu("local")


def test_unknown_kind():
    with pytest.raises(UnknownDevice):
        devices.resolve("quantum")


def test_tpu_address_precedence(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    assert devices.tpu_address() is None
    monkeypatch.setenv("COLAB_TPU_ADDR", "10.0.0.2:8470")
    assert devices.tpu_address() == "grpc://10.0.0.2:8470"
    monkeypatch.setenv("TPU_NAME", "my-tpu")
    assert devices.tpu_address() == "my-tpu"
    assert devices.tpu_address("local") == "local"


def test_machine_info_names_versions():
    info = devices.machine_info()
    assert info["tensorflow"] == tf.__version__
    assert {"keras", "cpu_name", "gpus"} <= set(info)


def test_describe_has_a_line_per_kind():
    lines = devices.describe()
    assert [line.split(":")[0] for line in lines] == ["cpu", "gpu", "tpu"]
    # Plain words: "cpu: NAME, 2 cores"; "gpu: none"; "tpu: none configured" (no TPU_NAME here).
    assert lines[0].endswith(f", {os.cpu_count()} cores") and "logical" not in lines[0]
    assert lines[1] == "gpu: none" or not lines[1].endswith("none")
    assert lines[2] == "tpu: none configured" or "TPU_NAME" in os.environ or "COLAB_TPU_ADDR" in os.environ


def test_an_unknown_tpu_name_is_unavailable_whatever_the_resolver_raises(monkeypatch):
    import urllib.error

    def unreachable(tpu=None):  # what an unknown name does: ask GCE's metadata server, offline
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", unreachable)
    with pytest.raises(DeviceUnavailable, match=r"TPU 'nonsense' not reachable \(URLError: <urlopen error.*"
                       r"check its name and zone"):
        devices._resolve_tpu("nonsense")
