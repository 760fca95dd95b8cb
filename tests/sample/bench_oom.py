"""Two cases of the sample workload; the first one's model function takes memory until the
kernel's OOM killer ends its process (as a model too big for the machine would), run by
tests/test_isolation.py in a memory cgroup with a limit. No model is built before its own test,
so the second case still trains."""

from pathlib import Path

import numpy as np

from fitbench.measure.experiments import Experiment, load_module
from fixtures import models

WORKLOAD = load_module(Path(__file__).with_name("bench_tiny.py")).WORKLOAD
HOG_CAP_BYTES = 6_000_000_000  # far above the test's limit; without a limit the case fails instead


def huge_mlp(input_shape, units=(16,), classes=10):
    if units == (200_000,):
        blocks = [np.ones(100_000_000 // 8) for _ in range(HOG_CAP_BYTES // 100_000_000)]  # written: resident
        raise AssertionError(f"took {len(blocks) * 0.1:.1f} GB and was not killed: no memory limit applies")
    return models.mlp(input_shape, units=units, classes=classes)


EXPERIMENT = Experiment(
    title="Tiny MLP: a model the OOM killer ends when built, then a case that trains",
    workload=WORKLOAD.but(name="tiny-oom", model=huge_mlp),
    grid={"hog": {"model_args": {"units": (200_000,)}}, "trains": {}},
    targets={profile: {"hog": 0.3, "trains": 0.3} for profile in ("full", "default", "smoke")},
)


def test_oom(train, case):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
