"""A tiny benchmark in the shape of those in benchmarks/, run by tests/test_integration.py."""

from fitbench import Experiment, Schedule, Workload
from fixtures import models

WORKLOAD = Workload(
    name="tiny",
    dataset="fashion_mnist",
    model=models.mlp,
    model_args={"units": (16,)},
    optimizer="adam",
    batch_size=64,
    validation=1000,
    schedules={
        "full": Schedule(epochs=4),
        "default": Schedule(epochs=4, train_samples=2000, bound="default: 2,000 images"),
        # 7 short rounds: enough for the gate to reach significance.
        "smoke": Schedule(epochs=8, train_samples=1000, bound="smoke: 1,000 images, 8 epochs"),
    },
)

EXPERIMENT = Experiment(title="Tiny MLP", workload=WORKLOAD, targets={"full": 0.5, "default": 0.5, "smoke": 0.5})


def test_tiny(train, case):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
