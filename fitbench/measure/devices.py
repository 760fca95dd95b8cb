"""The one place where devices are found, configured and turned into tf.distribute strategies."""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass

from fitbench.core import lazy
from fitbench.measure import hardware, startup
from fitbench.processes.cluster import Cluster

tf = lazy.module("tensorflow", startup.load)

KINDS = ("cpu", "gpu", "tpu")
TPU_ENV_VARS = ("TPU_NAME", "COLAB_TPU_ADDR")


class UnknownDevice(ValueError):
    """A device kind that fitbench does not know."""


class DeviceUnavailable(RuntimeError):
    """The device kind is known but this machine does not have it (the test is skipped)."""


@dataclass(frozen=True)
class Device:
    kind: str
    strategy: tf.distribute.Strategy
    description: str
    # In a cluster session: training processes, their task counts ({"worker": 2}) and the cores
    # each may use (its CPU affinity); one process and {} otherwise.
    workers: int = 1
    cluster: dict | None = None

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def is_tpu(self) -> bool:
        return isinstance(self.strategy, tf.distribute.TPUStrategy)


def parse_kinds(text: str) -> list[str]:
    """'cpu,gpu' -> ['cpu', 'gpu']; an unknown name raises UnknownDevice naming the known ones."""
    kinds = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise UnknownDevice(
            f"unknown device {', '.join(unknown) or repr(text)}: choose from {', '.join(KINDS)} "
            "(comma-separated, for example --devices cpu,gpu)"
        )
    return list(dict.fromkeys(kinds))


_configured = False
_cluster: tuple[Cluster, tf.distribute.MultiWorkerMirroredStrategy] | None = None


def configure(cpu_replicas: int = 1, cluster: Cluster | None = None) -> None:
    """Set what must be set before TensorFlow initializes its devices; idempotent.

    GPU memory growth is turned on so that one session can build many models without the
    first one reserving all GPU memory. `cpu_replicas` > 1 splits the CPU into that many
    logical devices so that MirroredStrategy with several replicas can run without GPUs.
    In a `cluster` session the MultiWorkerMirroredStrategy is made here: TensorFlow requires it
    before any other TensorFlow call, and it waits until every worker has started.
    """
    global _configured, _cluster
    if _configured:
        return
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if cluster is not None and cpu_replicas > 1:
        raise ValueError("--cpu-replicas splits one process's CPU; a cluster worker trains on its own "
                         "CPU or GPUs: drop --cpu-replicas")
    if cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_replicas)]
        )
    if cluster is not None:
        _cluster = (cluster, multi_worker_strategy(cluster, bool(gpus)))
    _configured = True


def multi_worker_strategy(cluster: Cluster, gpus: bool) -> tf.distribute.MultiWorkerMirroredStrategy:
    """All-reduce over every worker's local GPUs (NCCL) or its CPU (ring all-reduce over gRPC)."""
    implementation = tf.distribute.experimental.CommunicationImplementation
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=implementation.NCCL if gpus else implementation.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=cluster.resolver(),
                                                     communication_options=options)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    from fitbench.processes.launch import available_cores

    return len(available_cores())


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; py-cpuinfo elsewhere), lower case."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        import cpuinfo  # pytest-benchmark's dependency

        return frozenset(flag.lower() for flag in cpuinfo.get_cpu_info().get("flags", []))
    except Exception:  # noqa: BLE001 - unknown flags: every precision check says so
        return frozenset()


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    return [tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0))
            for gpu in tf.config.list_physical_devices("GPU")]


def slow_precision(kind: str, precision: str, flags: frozenset[str] | None = None,
                   capabilities: list[tuple[int, int]] | None = None) -> str | None:
    """Why `precision` (a Keras policy name) has no fast path on this machine's `kind` device, or
    None when it has one. Mixed precision without hardware support runs, but emulated: an MNIST
    epoch took 187 s instead of 3 s with bfloat16 on a CPU without it (tensorflow#45441)."""
    if precision == "float32":
        return None
    if kind == "cpu":
        if precision == "mixed_float16":
            return "mixed_float16 has no fast path on CPUs (float16 is for GPUs)"
        flags = cpu_flags() if flags is None else flags
        if not any(flag in flags for flag in BF16_CPU_FLAGS):
            return ("mixed_bfloat16 on a CPU without AVX512_BF16 or AMX is emulated and can be many times "
                    "slower (tensorflow#45441)")
        return None
    if kind == "gpu":
        capabilities = gpu_compute_capabilities() if capabilities is None else capabilities
        oldest = min(capabilities, default=(0, 0))
        if precision == "mixed_float16" and oldest < (7, 0):
            return f"mixed_float16 needs GPU compute capability 7.0+ (tensor cores); this GPU has {oldest}"
        if precision == "mixed_bfloat16" and oldest < (8, 0):
            return f"mixed_bfloat16 needs GPU compute capability 8.0+ (Ampere); this GPU has {oldest}"
        return None
    if kind == "tpu" and precision == "mixed_float16":
        return "TPUs have no float16; use mixed_bfloat16"
    return None


def gpu_names() -> list[str]:
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return names


def tpu_address(explicit: str | None = None) -> str | None:
    """The TPU to connect to: the option, else TPU_NAME, else Colab's COLAB_TPU_ADDR."""
    if explicit:
        return explicit
    if os.environ.get("TPU_NAME"):
        return os.environ["TPU_NAME"]
    if os.environ.get("COLAB_TPU_ADDR"):
        return "grpc://" + os.environ["COLAB_TPU_ADDR"]
    return None


@functools.cache
def resolve(kind: str, tpu: str | None = None) -> Device:
    """The strategy for `kind`; raises DeviceUnavailable (with the reason) when it is absent.

    cpu: OneDeviceStrategy, or MirroredStrategy over the logical CPUs made by configure();
    gpu: OneDeviceStrategy for one GPU, MirroredStrategy over all of them when there are several;
    tpu: TPUStrategy through TPUClusterResolver, initialized once per process (cached).
    """
    if kind not in KINDS:
        raise UnknownDevice(f"unknown device {kind!r}: choose from {', '.join(KINDS)}")
    if _cluster is not None:
        return _resolve_cluster(kind, *_cluster)
    if kind == "cpu":
        cpus = tf.config.list_logical_devices("CPU")
        cores = f"{os.cpu_count()} cores"
        if len(cpus) > 1:
            strategy = tf.distribute.MirroredStrategy([cpu.name for cpu in cpus])
            return Device("cpu", strategy, f"{cpu_name()} ({cores}, {len(cpus)} logical CPU devices)")
        return Device("cpu", tf.distribute.OneDeviceStrategy("/cpu:0"), f"{cpu_name()} ({cores})")
    if kind == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            built_for = "a CUDA build" if tf.test.is_built_with_cuda() else "a build without CUDA"
            raise DeviceUnavailable(
                f"no GPU visible to TensorFlow {tf.__version__} ({built_for}); "
                "on NVIDIA install fitbench[cuda] (tensorflow[and-cuda]), on Apple silicon tensorflow-metal"
            )
        names = gpu_names()
        if len(gpus) == 1:
            return Device("gpu", tf.distribute.OneDeviceStrategy("/gpu:0"), names[0])
        return Device("gpu", tf.distribute.MirroredStrategy(), f"{len(gpus)} x {', '.join(sorted(set(names)))}")
    return _resolve_tpu(tpu_address(tpu))


def _resolve_cluster(kind: str, cluster: Cluster, strategy: tf.distribute.Strategy) -> Device:
    """In a cluster session every worker trains on its GPUs when it has any, else on its CPU."""
    local = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    if kind == "tpu":
        raise DeviceUnavailable("a cluster session trains with MultiWorkerMirroredStrategy; a TPU pod slice is "
                                "one TPUStrategy session: run it without TF_CONFIG, with --tpu POD_NAME")
    if kind != local:
        raise DeviceUnavailable(f"this cluster's workers train on their {local.upper()}"
                                f"{'s' if local == 'gpu' else ''}; run {kind} tests in a session outside the cluster")
    per_worker = gpu_names() if local == "gpu" else [f"{cpu_name()} ({cores()} cores)"]
    description = f"{cluster.workers} workers x {', '.join(per_worker)}"
    return Device(kind, strategy, description, workers=cluster.workers,
                  cluster={**cluster.tasks, "cores_per_worker": cores()})


def _resolve_tpu(address: str | None) -> Device:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    except Exception as error:  # whatever the resolver raises means "no TPU here"
        # No TPU: the resolver raises ValueError without a name; a resolver for 'local' on a
        # machine without one fails later with NotFoundError; an unknown name makes it ask the
        # GCE metadata server, which fails with urllib's URLError (or a gRPC error).
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if address is None:
            raise DeviceUnavailable(
                f"no TPU reachable ({type(error).__name__}: {first_line}); give --tpu NAME "
                "(or 'local' on a Cloud TPU VM), or set TPU_NAME / COLAB_TPU_ADDR"
            ) from error
        raise DeviceUnavailable(
            f"TPU {address!r} not reachable ({type(error).__name__}: {first_line}); check its name and zone "
            "(gcloud compute tpus tpu-vm list) and that this machine may reach it, or give --tpu local on a "
            "Cloud TPU VM"
        ) from error
    cores = strategy.num_replicas_in_sync
    return Device("tpu", strategy, f"TPU {address or 'auto'} ({cores} cores)")


def version(package: str) -> str:
    """A package's version: the imported module's, else its installed distribution's (reading
    it does not import TensorFlow), else the module's once imported."""
    import importlib
    import sys
    from importlib import metadata

    if hasattr(sys.modules.get(package), "__version__"):
        return sys.modules[package].__version__
    distributions = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly")}
    for name in distributions.get(package, (package,)):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if package == "tensorflow":
        startup.load()
    return getattr(importlib.import_module(package), "__version__", "?")


def describe_without_tensorflow(cpu_replicas: int) -> list[str]:
    """The header's device lines where TensorFlow is not loaded (an isolated session's controller):
    the CPU as the options split it; GPUs and TPUs are found by the process that trains."""
    split = (f", split into {cpu_replicas} logical devices (--cpu-replicas {cpu_replicas})"
             if cpu_replicas > 1 else "")
    return [f"cpu: {cpu_name()}, {os.cpu_count()} cores{split}",
            "gpu, tpu: found by the training process (each test says what it used)"]


def describe(tpu: str | None = None) -> list[str]:
    """One line per device kind, for the pytest header: what was found, in plain words."""
    # In a cluster the logical devices are every worker's: this machine's CPU is not split.
    cpus = len(tf.config.list_logical_devices("CPU")) if _cluster is None else 1
    split = f", split into {cpus} logical devices (--cpu-replicas {cpus})" if cpus > 1 else ""
    lines = [f"cpu: {cpu_name()}, {os.cpu_count()} cores{split}"]
    names = gpu_names()
    lines.append(f"gpu: {', '.join(names)}" if names else "gpu: none")
    address = tpu_address(tpu)
    lines.append(f"tpu: {address} (connected when a tpu test starts)" if address else "tpu: none configured")
    if _cluster is not None:
        cluster, strategy = _cluster
        collective = "NCCL" if names else "ring all-reduce over gRPC"
        lines.insert(0, f"cluster: {cluster.describe()}; {strategy.num_replicas_in_sync} replicas, "
                        f"{collective}, {plural(cores(), 'core')} for this worker")
    return lines


def synchronize() -> None:
    """Wait until every device has finished its queued work (so a clock read after it is honest).

    GPUs run kernels asynchronously: without this an epoch could be timed before its last
    steps ran. Devices without a SyncDevice kernel fall back to draining TF's own queues.
    """
    from tensorflow.python.eager import context

    if _cluster is not None:
        # SyncDevice cannot run in a multi-worker eager context ("Haven't set up remote eager
        # worker"); the runner's barrier (an all-reduce read back to the host) waits for the
        # devices' streams.
        context.async_wait()
        return
    try:
        tf.test.experimental.sync_devices()
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        context.async_wait()


def machine_info() -> dict:
    """What a comparison of two runs needs to know about the software and accelerators."""
    import keras

    build = tf.sysconfig.get_build_info()
    info = {
        "system": platform.system(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cpu_name": cpu_name(),
        "gpus": gpu_names(),
    }
    if build.get("is_cuda_build"):
        info["cuda_version"] = build.get("cuda_version")
        info["cudnn_version"] = build.get("cudnn_version")
    driver = hardware.driver_version() if info["gpus"] else None
    if driver:  # a new driver is compared like a new TensorFlow (--compare-software)
        info["nvidia_driver"] = driver
    return info
