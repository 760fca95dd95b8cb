"""Two cases whose user code raises: the model function, then the dataset function. Each must
fail in one line naming the function and its error, run by tests/test_integration.py."""

from pathlib import Path

from fitbench import Experiment
from fitbench.measure.experiments import load_module

WORKLOAD = load_module(Path(__file__).with_name("bench_tiny.py")).WORKLOAD


def broken_model(input_shape, units=(16,), classes=10):
    raise ValueError("a layer was given units=-1")


def missing_data():
    raise FileNotFoundError("my_data.csv")


EXPERIMENT = Experiment(
    title="Tiny MLP: user code that raises",
    workload=WORKLOAD.but(name="tiny-raises"),
    grid={"model": {"model": broken_model}, "data": {"dataset": missing_data}},
    targets={profile: {"model": 0.3, "data": 0.3} for profile in ("full", "default", "smoke")},
)


def test_raises(train, case):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
