"""Two cases of the sample workload; the first one's process aborts natively before it trains
(as TensorFlow does when a check fails), run by tests/test_durable.py under pytest-xdist."""

import os
from pathlib import Path

from fitbench.measure.experiments import Experiment, load_module

WORKLOAD = load_module(Path(__file__).with_name("bench_tiny.py")).WORKLOAD.but(name="tiny-crash")

EXPERIMENT = Experiment(
    title="Tiny MLP: a native crash, then a case that trains",
    workload=WORKLOAD,
    grid={"abort": {}, "trains": {}},
    targets={profile: {"abort": 0.3, "trains": 0.3} for profile in ("full", "default", "smoke")},
)


def test_crash(train, case):
    if case.id == "abort":
        os.abort()
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
