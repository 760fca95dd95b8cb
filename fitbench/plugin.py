"""pytest hooks: device configuration and parametrization, the report header, and what
pytest-benchmark writes about the machine. Registered by the project's conftest.py."""

from __future__ import annotations

import pytest

from fitbench import devices


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.fitbench_devices = devices.parse_kinds(config.getoption("devices"))
    except devices.UnknownDevice as error:
        raise pytest.UsageError(str(error)) from error
    if config.getoption("cpu_replicas") < 1:
        raise pytest.UsageError("--cpu-replicas must be 1 or more")
    if config.getoption("benchmark_cprofile", None):
        # cProfile makes pytest-benchmark call the target once more: one extra epoch of training.
        raise pytest.UsageError("--benchmark-cprofile is not supported: it would train an extra epoch")
    # Must run before anything initializes TensorFlow's devices.
    devices.configure(cpu_replicas=config.getoption("cpu_replicas"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    import keras
    import tensorflow as tf

    lines = [f"fitbench: TensorFlow {tf.__version__}, Keras {keras.__version__}, "
             f"profile {config.getoption('profile')}, devices {','.join(config.fitbench_devices)}"]
    return lines + [f"  {line}" for line in devices.describe(config.getoption("tpu"))]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses `device` runs once per selected device, marked cpu/gpu/tpu."""
    if "device" in metafunc.fixturenames:
        kinds = metafunc.config.fitbench_devices
        params = [pytest.param(kind, marks=getattr(pytest.mark, kind), id=kind) for kind in kinds]
        metafunc.parametrize("device", params, indirect=True, scope="session")


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info.update(devices.machine_info())
