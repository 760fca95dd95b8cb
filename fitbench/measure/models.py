"""The workloads' models, each a short function whose layers read like the notebook's description."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
from keras import layers


def arguments(model: Callable[..., Any], model_args: Mapping[str, Any], classes: int | None) -> dict[str, Any]:
    """A workload's model arguments, plus the data's class count for a model function that takes
    `classes` and was not given it."""
    args = dict(model_args)
    try:
        takes_classes = "classes" in inspect.signature(model).parameters
    except (TypeError, ValueError):
        takes_classes = False
    if takes_classes and "classes" not in args and classes is not None:
        args["classes"] = classes
    return args


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
        # float32 output under a mixed precision policy, as the Keras mixed-precision guide advises.
        + [layers.Dense(classes, activation="softmax", dtype="float32")],
        name="mlp",
    )


def cnn(
    input_shape: Sequence[int],
    filters: Sequence[int] = (64, 128, 256),
    kernel_size: int = 5,
    dense_units: int = 256,
    conv_dropout: float = 0.25,
    dense_dropout: float = 0.5,
    classes: int = 10,
) -> keras.Model:
    """The Colab guide's CNN: for each of `filters`, BatchNormalization -> Conv2D(f, 5x5, same,
    elu) -> MaxPooling2D(2x2, stride 2) -> Dropout(0.25); then Flatten -> Dense(256) -> elu ->
    Dropout(0.5) -> Dense(10) -> softmax. With the defaults it has 1,619,470 parameters."""
    blocks = []
    for width in filters:
        blocks += [
            layers.BatchNormalization(),
            layers.Conv2D(width, kernel_size, padding="same", activation="elu"),
            layers.MaxPooling2D(pool_size=2, strides=2),
            layers.Dropout(conv_dropout),
        ]
    return keras.Sequential(
        [keras.Input(shape=tuple(input_shape))]
        + blocks
        + [
            layers.Flatten(),
            layers.Dense(dense_units),
            layers.Activation("elu"),
            layers.Dropout(dense_dropout),
            layers.Dense(classes),
            layers.Activation("softmax", dtype="float32"),  # float32 output under mixed precision
        ],
        name="cnn",
    )
