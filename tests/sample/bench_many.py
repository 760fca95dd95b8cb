"""The sample workload of bench_tiny.py over six batch sizes: a session long enough to be killed
in the middle (tests/test_durable.py)."""

from pathlib import Path

from fitbench.measure.experiments import Experiment, load_module

BATCHES = {f"batch_size-{b}": b for b in (50, 60, 70, 80, 90, 100)}

EXPERIMENT = Experiment(
    title="Tiny MLP: many batch sizes",
    workload=load_module(Path(__file__).with_name("bench_tiny.py")).WORKLOAD.but(name="tiny-many"),
    grid={case: {"batch_size": b} for case, b in BATCHES.items()},
    targets={profile: dict.fromkeys(BATCHES, 0.3) for profile in ("full", "default", "smoke")},
)


def test_many(train, case):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
