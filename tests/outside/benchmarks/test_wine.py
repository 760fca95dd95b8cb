"""A subclassed keras.Model that overrides train_step (keras.io, "Customizing what happens in
fit() with TensorFlow"), on scikit-learn's wine data."""

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from sklearn.datasets import load_wine

from fitbench import Experiment, Schedule, Workload


def wine(seed: int = 0) -> dict:
    """178 wines, 13 features, three cultivars: 120 train, 28 validation, 30 test."""
    x, y = load_wine(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order].astype("float32"), y[order].astype("int64")
    x = (x - x[:120].mean(axis=0)) / x[:120].std(axis=0)
    return {"train": (x[:120], y[:120]), "validation": (x[120:148], y[120:148]), "test": (x[148:], y[148:])}


class CustomModel(keras.Model):
    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def custom_mlp(input_shape, classes, units=16):
    inputs = keras.Input(shape=input_shape)
    hidden = layers.Dense(units, activation="relu")(inputs)
    return CustomModel(inputs, layers.Dense(classes, activation="softmax")(hidden), name="custom_mlp")


WORKLOAD = Workload(name="wine-custom-step", dataset=wine, model=custom_mlp, batch_size=16,
                    optimizer={"class_name": "Adam", "config": {"learning_rate": 0.01}},
                    schedules={"smoke": Schedule(epochs=8), "default": Schedule(epochs=15)})

EXPERIMENT = Experiment(title="Wine: a custom train_step", workload=WORKLOAD,
                        targets={"smoke": 0.8, "default": 0.9})


def test_wine(case, train):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
