"""Each device's dense matmul peak: the ceiling a benchmark's training FLOP/s is a fraction of.

Measured, not taken from a datasheet: a chain of square matrix products (float32, and the
compute type of each mixed policy the device runs fast) under the device's strategy, one
chain per replica, best of a few trials, the devices synchronized before the clock is read.
Several sizes are swept and the best kept (an upper bound, as a peak must be); a few seconds
per device; cached per machine fingerprint (CPU, GPUs, TensorFlow, cores) in
pytest's cache and measured again on request (``--remeasure-peak``). Model FLOPs utilisation
is then a benchmark's training GFLOP/s (fitbench.measure.flops) over the peak of its precision.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable

from fitbench.core import lazy
from fitbench.measure import devices, startup
from fitbench.measure.devices import Device
from fitbench.measure.workloads import PRECISIONS

tf = lazy.module("tensorflow", startup.load)

CACHE_KEY = "fitbench/peak_gflops"
COMPUTE_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}  # tf dtype names
# Swept, and the best kept: the size that reaches a device's peak depends on its caches and
# cores (on this project's 2-vCPU VM 1024 alone gave a "peak" that a CNN's training exceeded,
# 105%); small enough for a few seconds on the slowest of each kind.
SIZES = {"cpu": (512, 1024, 2048), "gpu": (4096, 8192), "tpu": (4096, 8192)}
PRODUCTS_PER_CHAIN = 8
# On a CPU each chain is the same work at every size (8 products of 1024: 17 GFLOP, about 0.25 s
# on a 2-vCPU AMD EPYC VM), so the largest size no longer costs 8x the next: measured there, the
# float32 sweep took 14 s with 8 products of 2048 (12 s of it the 2048s) and takes 5 s now, its
# peak 69.4 against 70.1 GFLOP/s. A GPU's or TPU's chains stay 8 products long.
CPU_CHAIN_FLOPS = PRODUCTS_PER_CHAIN * 2 * 1024**3
TRIALS = 5


def products_per_chain(kind: str, n: int) -> int:
    """How many n x n products one timed chain holds on a device of `kind`."""
    if kind != "cpu":
        return PRODUCTS_PER_CHAIN
    return max(1, round(CPU_CHAIN_FLOPS / (2 * n**3)))


def peak_gflops(device: Device, precision: str) -> float:
    """The device's dense matmul peak in `precision`: the best over the swept sizes."""
    return max(matmul_gflops(device, precision, n) for n in SIZES[device.kind])


def matmul_gflops(device: Device, precision: str, n: int) -> float:
    """Best-of-TRIALS GFLOP/s of dense n x n products in `precision`'s compute type, over all
    of `device`'s replicas."""
    dtype = COMPUTE_DTYPES[precision]
    strategy, length = device.strategy, products_per_chain(device.kind, n)
    with strategy.scope():
        # Scaled so that a chain of products stays near 1 (no overflow to inf in 16 bits).
        a = tf.cast(tf.random.uniform((n, n), seed=1), dtype)
        b = tf.cast(tf.random.uniform((n, n), seed=2) * (2.0 / n), dtype)

    @tf.function
    def chain() -> tf.Tensor:
        def products(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            for _ in range(length):  # each depends on the last: nothing is skipped
                x = tf.matmul(x, y)
            return tf.reduce_sum(tf.cast(x[:1, :1], tf.float32))

        return strategy.run(products, args=(a, b))

    chain()  # trace, compile, warm up
    devices.synchronize()
    best = math.inf
    for _ in range(TRIALS):
        start = time.perf_counter()
        chain()
        devices.synchronize()
        best = min(best, time.perf_counter() - start)
    flops = device.replicas * length * 2 * n**3
    return flops / best / 1e9


def fast_precisions(kind: str) -> list[str]:
    """The precisions `kind` has a fast path for on this machine (float32 always)."""
    return [precision for precision in PRECISIONS if devices.slow_precision(kind, precision) is None]


def fingerprint(device: Device) -> str:
    """What a peak depends on: the device, its replicas, the CPU's threads, TensorFlow."""
    return "|".join([device.kind, str(device.replicas), devices.cpu_name(), ",".join(devices.gpu_names()),
                     str(os.cpu_count()), tf.__version__])


def peaks(found: Iterable[Device], cache: dict[str, dict[str, float]] | None = None,
          remeasure: bool = False, measure: bool = True) -> tuple[dict[str, dict[str, float]], dict]:
    """{kind: {precision: GFLOP/s}} for the devices `found`, read from `cache` (by fingerprint)
    unless `remeasure`, measured when missing unless not `measure`; also the updated cache."""
    cache = dict(cache or {})
    out: dict[str, dict[str, float]] = {}
    for device in found:
        key = fingerprint(device)
        if not measure and key not in cache:
            continue
        if remeasure or key not in cache:
            cache[key] = {precision: round(peak_gflops(device, precision), 1)
                          for precision in fast_precisions(device.kind)}
        out[device.kind] = dict(cache[key])
    return out, cache
