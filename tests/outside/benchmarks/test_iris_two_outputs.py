"""A model with two outputs, a loss each: the iris species (checked, on accuracy) and the petal
length (a regression trained beside it), from the sepals and the petal width."""

import keras
import numpy as np
from keras import layers
from sklearn.datasets import load_iris

from fitbench import Experiment, Schedule, Workload


def iris(seed: int = 0) -> dict:
    """150 flowers: 100 train, 20 validation, 30 test."""
    data, species = load_iris(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(species))
    data, species = data[order].astype("float32"), species[order].astype("int64")
    x, petal_length = np.delete(data, 2, axis=1), data[:, 2:3]
    x = (x - x[:100].mean(axis=0)) / x[:100].std(axis=0)

    def part(rows):
        return x[rows], {"species": species[rows], "petal_length": petal_length[rows]}

    return {"train": part(slice(0, 100)), "validation": part(slice(100, 120)), "test": part(slice(120, None))}


def two_heads(input_shape, classes=3, units=16):
    inputs = keras.Input(shape=input_shape)
    hidden = layers.Dense(units, activation="relu")(inputs)
    return keras.Model(inputs, {"species": layers.Dense(classes, activation="softmax", name="species")(hidden),
                                "petal_length": layers.Dense(1, name="petal_length")(hidden)}, name="two_heads")


WORKLOAD = Workload(
    name="iris-two-heads", dataset=iris, model=two_heads, optimizer={"class_name": "Adam", "config": {
        "learning_rate": 0.05}}, batch_size=16,
    loss={"species": "sparse_categorical_crossentropy", "petal_length": "mse"},
    metric={"species": "accuracy"},  # the output it checks
    schedules={"smoke": Schedule(epochs=10), "default": Schedule(epochs=20)},
)

EXPERIMENT = Experiment(title="Iris, two outputs: species accuracy", workload=WORKLOAD,
                        targets={"smoke": 0.8, "default": 0.9})


def test_iris_two_outputs(case, train):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
