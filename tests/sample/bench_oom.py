"""Two cases of the sample workload; the first one takes memory until the kernel's OOM killer
ends its process, run by tests/test_isolation.py in a memory cgroup with a limit."""

from pathlib import Path

import numpy as np

from fitbench.measure.experiments import Experiment, load_module

WORKLOAD = load_module(Path(__file__).with_name("bench_tiny.py")).WORKLOAD.but(name="tiny-oom")
HOG_CAP_BYTES = 6_000_000_000  # far above the test's limit; without a limit the case fails instead

EXPERIMENT = Experiment(
    title="Tiny MLP: a case the OOM killer ends, then a case that trains",
    workload=WORKLOAD,
    grid={"hog": {}, "trains": {}},
    targets={profile: {"hog": 0.3, "trains": 0.3} for profile in ("full", "default", "smoke")},
)


def test_oom(train, case):
    if case.id == "hog":
        blocks = [np.ones(100_000_000 // 8) for _ in range(HOG_CAP_BYTES // 100_000_000)]  # written: resident
        raise AssertionError(f"took {len(blocks) * 0.1:.1f} GB and was not killed: no memory limit applies")
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
