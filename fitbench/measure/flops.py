"""Training FLOPs per sample, computed from the layer shapes (dense and convolution layers).

A layer whose forward pass costs F = 2 x multiply-adds costs about 2F more in the backward
pass (the gradient with respect to its weights and with respect to its inputs), except the
first weighted layer, whose input gradient nobody needs: F more. Bias adds, activations,
pooling, normalization and the optimizer update are not counted (each is O(outputs), small
against the matrix products for these models).
"""

from __future__ import annotations

import math

import keras


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
