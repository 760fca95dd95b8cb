"""A functional model with two named inputs, fed a dict of arrays: the breast-cancer features in
two groups (the cell nuclei's means, and their errors and worst values), gated on AUC."""

import keras
import numpy as np
from keras import layers
from sklearn.datasets import load_breast_cancer

from fitbench import Experiment, Schedule, Workload


def two_groups(seed: int = 0) -> dict:
    """The 30 features as {"means": 10 columns, "extremes": 20 columns}: 400 train, 80 validation, 89 test."""
    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order].astype("float32"), y[order].astype("int64")
    x = (x - x[:400].mean(axis=0)) / x[:400].std(axis=0)

    def part(rows):
        return {"means": x[rows, :10], "extremes": x[rows, 10:]}, y[rows]

    return {"train": part(slice(0, 400)), "validation": part(slice(400, 480)), "test": part(slice(480, None))}


def two_towers(input_shape, units=8):
    means = keras.Input(shape=input_shape["means"], name="means")
    extremes = keras.Input(shape=input_shape["extremes"], name="extremes")
    joined = layers.Concatenate()([layers.Dense(units, activation="relu")(means),
                                   layers.Dense(units, activation="relu")(extremes)])
    return keras.Model({"means": means, "extremes": extremes}, layers.Dense(1, activation="sigmoid")(joined),
                       name="two_towers")


WORKLOAD = Workload(name="cancer-two-inputs", dataset=two_groups, model=two_towers,
                    optimizer={"class_name": "Adam", "config": {"learning_rate": 0.01}},
                    loss="binary_crossentropy", metric="auc", batch_size=32,
                    schedules={"smoke": Schedule(epochs=6), "default": Schedule(epochs=20)})

EXPERIMENT = Experiment(title="Breast cancer, two inputs: AUC", workload=WORKLOAD,
                        targets={"smoke": 0.95, "default": 0.97})


def test_cancer_two_inputs(case, train):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
