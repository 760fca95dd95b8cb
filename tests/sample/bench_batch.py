"""A tiny batch-size experiment in the shape of benchmarks/test_batch_size.py, for report tests."""

import pytest

from fitbench import models
from fitbench.workloads import Schedule, Workload

BATCH_SIZES = [50, 100]
WORKLOAD = Workload(
    name="tiny-batch-size",
    dataset="fashion_mnist",
    model=models.mlp,
    model_args={"units": (16,)},
    optimizer="adam",
    validation=1000,
    schedules={"full": Schedule(epochs=4), "default": Schedule(epochs=4, train_samples=1000, bound="1,000"),
               "smoke": Schedule(epochs=4, train_samples=500, bound="500")},
)


@pytest.mark.benchmark(group="tiny-batch-size")
@pytest.mark.parametrize("batch_size", BATCH_SIZES, ids="batch_size-{}".format)
def test_batch_size(train, profile, batch_size):
    result = train(WORKLOAD.but(batch_size=batch_size))
    result.assert_accuracy("test_accuracy", 0.3)
