"""The workloads' models, each a short function whose layers read like the notebook's description."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers


def mlp(
    input_shape: Sequence[int],
    units: Sequence[int] = (300, 100),
    activations: Sequence[str] | str = "relu",
    classes: int = 10,
) -> keras.Model:
    """Flatten -> Dense(units[i], activations[i]) for each hidden layer -> Dense(classes, softmax).

    The batch-size notebook's model is units=(300, 100); the MNIST notebook's base model is
    units=(128,).
    """
    if isinstance(activations, str):
        activations = [activations] * len(units)
    if len(activations) != len(units):
        raise ValueError(f"{len(units)} hidden layers but {len(activations)} activations")
    return keras.Sequential(
        [keras.Input(shape=tuple(input_shape)), layers.Flatten()]
        + [layers.Dense(width, activation=act) for width, act in zip(units, activations, strict=True)]
        + [layers.Dense(classes, activation="softmax")],
        name="mlp",
    )
