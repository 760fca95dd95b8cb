"""Training FLOPs per sample, computed from the layer shapes (dense and convolution layers).

A layer whose forward pass costs F = 2 x multiply-adds costs about 2F more in the backward
pass (the gradient with respect to its weights and with respect to its inputs), except the
first weighted layer, whose input gradient nobody needs: F more. Bias adds, activations,
pooling, normalization and the optimizer update are not counted (each is O(outputs), small
against the matrix products for these models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

from fitbench.measure import models
from fitbench.measure.datasets import Dataset, split_sizes
from fitbench.measure.workloads import Schedule, Workload


def forward_flops(layer: keras.layers.Layer) -> int:
    """2 x multiply-adds of one sample's forward pass through `layer` (0 for unweighted layers)."""
    if isinstance(layer, keras.layers.Dense):
        fan_in, units = layer.kernel.shape
        return 2 * int(fan_in) * int(units)
    if isinstance(layer, keras.layers.Conv2D):
        kernel_h, kernel_w, channels_in, filters = (int(d) for d in layer.kernel.shape)
        out_h, out_w = (int(d) for d in layer.output.shape[1:3])
        return 2 * kernel_h * kernel_w * channels_in * filters * out_h * out_w
    return 0


def training_flops_per_sample(model: keras.Model) -> int:
    """Forward plus backward FLOPs of one training sample through `model`."""
    total, first = 0, True
    for layer in model.layers:
        flops = forward_flops(layer)
        if flops:
            total += flops * (2 if first else 3)
            first = False
    return total


def gflops_per_second(flops_per_sample: int, samples: int, seconds: float) -> float:
    return flops_per_sample * samples / seconds / 1e9 if seconds > 0 else math.nan


@dataclass(frozen=True)
class EpochWork:
    """What one epoch of a test computes, for the session's time left: its optimizer steps and
    its FLOPs (the training samples', plus each evaluated sample's forward pass at a third of
    a training sample's)."""

    steps: int
    flops: float
    model: str = ""  # which model (its function and arguments): tests of one model share a FLOP rate
    trainings: int = 1  # models trained in turns: 2 with a twin (already in steps and flops)


def epoch_work(workload: Workload, schedule: Schedule, dataset: Dataset, track_test: bool = False,
               paired: bool = False) -> EpochWork:
    """One epoch's work for `workload` on `dataset`: it builds the model (not compiled, not
    trained) for its layer shapes. `track_test`: the test set is evaluated after every epoch
    too; `paired`: a twin trains in turns in the same test (a variant's reference), doubling it."""
    sizes = split_sizes(dataset, workload.validation, schedule.train_samples, schedule.validation_samples,
                        schedule.test_samples)
    shape = tuple(workload.input_shape or dataset.x_train.shape[1:])
    model = workload.model(input_shape=shape, **models.arguments(workload.model, workload.model_args,
                                                                  dataset.classes))
    per_sample = training_flops_per_sample(model)
    evaluated = sizes["validation"] + (min(len(dataset.y_test), schedule.test_samples or len(dataset.y_test))
                                       if track_test else 0)
    times = 2 if paired else 1
    steps = -(-sizes["train"] // workload.batch_size)
    name = f"{getattr(workload.model, '__qualname__', workload.model)}({sorted(workload.model_args.items())}, {shape})"
    return EpochWork(steps=times * steps, flops=times * per_sample * (sizes["train"] + evaluated / 3), model=name,
                     trainings=times)
