"""A benchmark as a user would write it, with optimizers whose learning rate makes training
diverge (SGD at 1e12: the loss is NaN in epoch 1; at 1e4 it stays finite but explodes, 3.6e13
against 2.4 before training), and a well-behaved one after them."""

from pathlib import Path

from fitbench.measure.experiments import Experiment, load_module

TINY = load_module(Path(__file__).with_name("bench_tiny.py")).WORKLOAD

EXPERIMENT = Experiment(
    title="Tiny MLP: learning rate",
    workload=TINY.but(name="tiny-learning-rate"),
    grid={
        "sgd-1e12": {"optimizer": {"class_name": "SGD", "config": {"learning_rate": 1e12}}},
        "sgd-1e4": {"optimizer": {"class_name": "SGD", "config": {"learning_rate": 1e4}}},
        "adam": {"optimizer": "adam"},
    },
    targets={profile: {"sgd-1e12": 0.3, "sgd-1e4": 0.3, "adam": 0.3} for profile in ("full", "default", "smoke")},
)


def test_learning_rate(train, case):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
