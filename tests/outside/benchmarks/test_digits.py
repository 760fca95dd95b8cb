"""A small Conv2D classifier on scikit-learn's 8x8 digits at two widths, checked on top-2
accuracy given as a Keras metric object (its goal known from its class)."""

import keras
import numpy as np
from keras import layers
from sklearn.datasets import load_digits

from fitbench import Experiment, Schedule, Workload


def digits(seed: int = 0) -> dict:
    """1,797 images of 8x8 pixels (0..16), ten classes: 1,200 train, 297 validation, 300 test."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = (x[order] / 16.0).astype("float32").reshape(-1, 8, 8, 1), y[order].astype("int64")
    return {"train": (x[:1200], y[:1200]), "validation": (x[1200:1497], y[1200:1497]), "test": (x[1497:], y[1497:])}


def cnn(input_shape, classes, filters=8):
    return keras.Sequential([keras.Input(shape=input_shape), layers.Conv2D(filters, 3, activation="relu"),
                             layers.Flatten(), layers.Dense(classes, activation="softmax")], name="cnn")


WORKLOAD = Workload(
    name="digits-cnn", dataset=digits, model=cnn, optimizer="adam", batch_size=64,
    metric=keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2"),
    schedules={"smoke": Schedule(epochs=4), "default": Schedule(epochs=10)},
)

EXPERIMENT = Experiment(
    title="Digits CNN: filters",
    workload=WORKLOAD,
    grid={"filters-8": {"model_args": {"filters": 8}}, "filters-32": {"model_args": {"filters": 32}}},
    targets={profile: {"filters-8": 0.9, "filters-32": 0.9} for profile in ("smoke", "default")},
)


def test_digits(case, train):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
