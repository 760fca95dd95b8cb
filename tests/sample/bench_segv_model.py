"""Two cases of the sample workload; the first one's model function kills its process with
SIGSEGV when it is built (as a native bug in a layer would), run by tests/test_isolation.py.
No model is built before its own test, so the second case still trains."""

import os
import signal
from pathlib import Path

from fitbench import Experiment
from fitbench.measure.experiments import load_module
from fixtures import models

WORKLOAD = load_module(Path(__file__).with_name("bench_tiny.py")).WORKLOAD


def segfaulting_mlp(input_shape, units=(16,), classes=10):
    if units == (999,):
        os.kill(os.getpid(), signal.SIGSEGV)
    return models.mlp(input_shape, units=units, classes=classes)


EXPERIMENT = Experiment(
    title="Tiny MLP: a model that segfaults when built, then one that trains",
    workload=WORKLOAD.but(name="tiny-segv", model=segfaulting_mlp),
    grid={"segv": {"model_args": {"units": (999,)}}, "trains": {}},
    targets={profile: {"segv": 0.3, "trains": 0.3} for profile in ("full", "default", "smoke")},
)


def test_segv(train, case):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
