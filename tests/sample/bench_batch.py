"""A tiny batch-size experiment in the shape of benchmarks/test_batch_size.py, for report tests:
the sample workload of bench_tiny.py over two batch sizes."""

from pathlib import Path

from fitbench.measure.experiments import Experiment, Plot, load_module

BATCH_SIZES = {"batch_size-50": 50, "batch_size-100": 100}

EXPERIMENT = Experiment(
    title="Tiny MLP: batch size",
    workload=load_module(Path(__file__).with_name("bench_tiny.py")).WORKLOAD.but(name="tiny-batch-size"),
    grid={case: {"batch_size": b} for case, b in BATCH_SIZES.items()},
    targets={"full": dict.fromkeys(BATCH_SIZES, 0.3), "default": dict.fromkeys(BATCH_SIZES, 0.3),
             "smoke": dict.fromkeys(BATCH_SIZES, 0.3)},
    plots=(Plot("batch_size", "Tiny MLP", "batch size (samples, log scale)", BATCH_SIZES, log_x=True),),
)


def test_batch_size(train, case):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
