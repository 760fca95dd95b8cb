"""A tiny batch-size experiment in the shape of benchmarks/test_batch_size.py, for report tests:
the sample workload of bench_tiny.py over two batch sizes."""

from pathlib import Path

import pytest

from fitbench.workloads import load_benchmark_file

BATCH_SIZES = [50, 100]
WORKLOAD = load_benchmark_file(Path(__file__).with_name("bench_tiny.py")).WORKLOAD.but(name="tiny-batch-size")


@pytest.mark.benchmark(group="tiny-batch-size")
@pytest.mark.parametrize("batch_size", BATCH_SIZES, ids="batch_size-{}".format)
def test_batch_size(train, profile, batch_size):
    result = train(WORKLOAD.but(batch_size=batch_size))
    result.assert_accuracy("test_accuracy", 0.3)
