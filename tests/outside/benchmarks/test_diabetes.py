"""A regression MLP on scikit-learn's bundled diabetes data, gated on MAE (lower is better).

A benchmark of a user's own repository: its data is a function, its metric is MAE with the
goal <=, and its gate tolerates 3 MAE points (in the target's units) before a regression."""

import keras
import numpy as np
import pytest
from keras import layers
from sklearn.datasets import load_diabetes

from fitbench import Experiment, Schedule, Workload


def diabetes(seed: int = 0) -> dict:
    """442 patients, 10 features, disease progression after a year: 300 train, 70 validation, 72 test."""
    x, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order].astype("float32"), y[order].astype("float32")
    x = (x - x[:300].mean(axis=0)) / x[:300].std(axis=0)
    return {"train": (x[:300], y[:300]), "validation": (x[300:370], y[300:370]), "test": (x[370:], y[370:])}


def regressor(input_shape, units=32):
    return keras.Sequential([keras.Input(shape=input_shape), layers.Dense(units, activation="relu"), layers.Dense(1)],
                            name="regressor")


WORKLOAD = Workload(
    name="diabetes-mlp",
    dataset=diabetes,
    dataset_args={"seed": 0},
    model=regressor,
    optimizer={"class_name": "Adam", "config": {"learning_rate": 0.05}},
    loss="mse",
    metric="mae",
    batch_size=32,
    schedules={"smoke": Schedule(epochs=15), "default": Schedule(epochs=30)},
)

EXPERIMENT = Experiment(
    title="Diabetes MLP: MAE",
    workload=WORKLOAD,
    targets={"smoke": 60.0, "default": 55.0},  # MAE <= target; predicting the mean gives about 64
)


@pytest.mark.gate(metric=3.0)
def test_diabetes(case, train):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
