"""A GRU classifier on synthetic sequences from an unbatched tf.data.Dataset, checked on a metric
function (its goal given), the validation held out from the training data."""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from fitbench import Experiment, Schedule, Workload


def sequences(count: int = 1200, steps: int = 12) -> dict:
    """Which of three channels carries the largest sum over the sequence."""
    x = np.random.default_rng(0).normal(size=(count, steps, 3)).astype("float32")
    y = x.sum(axis=1).argmax(axis=1).astype("int64")
    data = {"train": (x[:1000], y[:1000]), "test": (x[1000:], y[1000:])}
    return {part: tf.data.Dataset.from_tensor_slices(arrays) for part, arrays in data.items()}


def top2_accuracy(y_true, y_pred):
    return keras.metrics.sparse_top_k_categorical_accuracy(y_true, y_pred, k=2)


def gru(input_shape, classes, units=16):
    return keras.Sequential([keras.Input(shape=input_shape), layers.GRU(units),
                             layers.Dense(classes, activation="softmax")], name="gru")


WORKLOAD = Workload(
    name="sequences-gru", dataset=sequences, model=gru, optimizer="adam", batch_size=32, validation=0.2,
    metric=top2_accuracy, higher_is_better=True,
    schedules={"smoke": Schedule(epochs=4), "default": Schedule(epochs=10)},
)

EXPERIMENT = Experiment(title="Sequences GRU: top-2 accuracy", workload=WORKLOAD,
                        targets={"smoke": 0.8, "default": 0.9})


def test_sequences(case, train):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
