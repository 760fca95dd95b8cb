"""A binary classifier on scikit-learn's bundled breast-cancer data, gated on AUC (higher is better)."""

import keras
import numpy as np
from keras import layers
from sklearn.datasets import load_breast_cancer

from fitbench import Experiment, Schedule, Workload


def breast_cancer(seed: int = 0) -> dict:
    """569 tumours, 30 features, malignant or benign: 400 train, 80 validation, 89 test."""
    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order].astype("float32"), y[order].astype("int64")
    x = (x - x[:400].mean(axis=0)) / x[:400].std(axis=0)
    return {"train": (x[:400], y[:400]), "validation": (x[400:480], y[400:480]), "test": (x[480:], y[480:])}


def classifier(input_shape, units=16):
    return keras.Sequential([keras.Input(shape=input_shape), layers.Dense(units, activation="relu"),
                             layers.Dense(1, activation="sigmoid")], name="classifier")


WORKLOAD = Workload(
    name="cancer-mlp",
    dataset=breast_cancer,
    model=classifier,
    optimizer="adam",
    loss="binary_crossentropy",
    metric="auc",
    batch_size=32,
    schedules={"smoke": Schedule(epochs=10), "default": Schedule(epochs=20)},
)

EXPERIMENT = Experiment(
    title="Breast cancer classifier: AUC",
    workload=WORKLOAD,
    grid={"units-8": {"model_args": {"units": 8}}, "units-32": {"model_args": {"units": 32}}},
    targets={"smoke": {"units-8": 0.95, "units-32": 0.95}, "default": {"units-8": 0.97, "units-32": 0.97}},
)


def test_cancer(case, train):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
