"""The sample workload of bench_tiny.py under 4 steps per execution, each epoch in turns with
its float32 twin (the experiment's reference), as benchmarks/test_variants.py does."""

from pathlib import Path

from fitbench import Experiment, Variant
from fitbench.measure.experiments import load_module

WORKLOAD = load_module(Path(__file__).with_name("bench_tiny.py")).WORKLOAD.but(name="tiny-paired")

EXPERIMENT = Experiment(
    title="Tiny MLP: 4 steps per execution against its f32 twin",
    workload=WORKLOAD,
    grid={"spe4": {"variant": Variant(steps_per_execution=4)}},
    targets={profile: {"spe4": 0.3} for profile in ("full", "default", "smoke")},
    reference=Variant(),
)


def test_paired(train, case):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
