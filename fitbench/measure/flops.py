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

from fitbench.core import lazy
from fitbench.core.record import Record
from fitbench.measure import startup

keras = lazy.module("keras", startup.load)


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


def epoch_work(record: Record) -> EpochWork:
    """One epoch's work of the test that made `record`, from what it measured (its samples a
    epoch, its batch, its model's FLOPs per sample), for a later session's time left: a session
    builds no model before that model's own test (a model that cannot be built, or is too big
    for the memory, would fail every test of the session at collection). With a twin (a
    variant's reference, `record.reference`) the work is doubled; the test set counts when it
    was evaluated after every epoch."""
    schedule, workload = record.measurement.schedule, record.measurement.workload
    times = 2 if record.reference else 1
    tracked = bool(record.epochs) and math.isfinite(record.epochs[0].test_metric)
    samples = schedule["samples_per_epoch"]
    evaluated = schedule["validation_samples"] + (schedule["test_samples"] if tracked else 0)
    steps = -(-samples // record.measurement.global_batch)
    name = f"{workload['model']}({sorted(workload['model_args'].items())}, {tuple(workload['input_shape'])})"
    return EpochWork(steps=times * steps, flops=times * record.flops_per_sample * (samples + evaluated / 3),
                     model=name, trainings=times)
