"""Training FLOPs per sample, computed from the layer shapes.

Counted, as 2 x multiply-adds of one sample's forward pass: Dense (at every position of a
sequence or image it is applied to), convolutions of 1 to 3 dimensions (grouped, transposed,
depthwise and separable too), the recurrent layers (SimpleRNN, GRU, LSTM: their kernel and
recurrent kernel at every time step; Bidirectional: both directions), MultiHeadAttention (its
four projections and the attention's two products), and Embedding (a lookup: none). A layer
whose forward pass costs F costs about 2F more in the backward pass (the gradient with respect
to its weights and with respect to its inputs), except the first weighted layer, whose input
gradient nobody needs: F more. Bias adds, activations, pooling, normalization and the optimizer
update are not counted (each is O(outputs), small against the matrix products).

Any other layer with weights (a user's own, EinsumDense, TimeDistributed, ...) or a shape that
is not known (a sequence of unknown length, a subclassed model never called on a symbolic
input) makes the model's count unknown: 0, with the reason, and efficiencies print n/a rather
than a figure that leaves work out. tests/test_flops.py checks each kind against TensorFlow's
profiler (or a hand count where the profiler counts none).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

from fitbench.core import lazy
from fitbench.core.record import Record
from fitbench.measure import startup

keras = lazy.module("keras", startup.load)


class Uncounted(ValueError):
    """A layer whose FLOPs cannot be counted: the message says which and why."""


def _shape(layer: keras.layers.Layer, which: str) -> tuple:
    try:
        tensor = getattr(layer, which)
    except (AttributeError, ValueError) as error:  # never called on a symbolic input
        raise Uncounted(f"{layer.name} ({type(layer).__name__}): no {which} shape recorded ({error})") from error
    if isinstance(tensor, (list, tuple)):
        tensor = tensor[0]
    return tuple(tensor.shape)


def _positions(shape: tuple, layer: keras.layers.Layer) -> int:
    """The number of positions between the batch and the last axis (1 for a vector)."""
    inner = shape[1:-1]
    if any(d is None for d in inner):
        raise Uncounted(f"{layer.name} ({type(layer).__name__}): shape {shape} has an axis of unknown length")
    return math.prod(int(d) for d in inner)


def _size(variable) -> int:
    return math.prod(int(d) for d in variable.shape)


def forward_flops(layer: keras.layers.Layer) -> int:
    """2 x multiply-adds of one sample's forward pass through `layer`: 0 for layers without
    weights (and for the lookups of an Embedding); Uncounted for a weighted layer of a kind
    not counted here, or of an unknown shape."""
    layers = keras.layers
    if isinstance(layer, layers.Bidirectional):  # its two layers are called inside it: its input's steps
        return sum(_recurrent_flops(inner, layer) for inner in (layer.forward_layer, layer.backward_layer))
    if isinstance(layer, layers.Dense):
        return 2 * _size(layer.kernel) * _positions(_shape(layer, "output"), layer)
    if isinstance(layer, (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)):
        # Each input position multiplies the whole kernel (a count of the products made; the
        # profiler's Conv2DBackpropInput counts the output positions, padding included).
        return 2 * _size(layer.kernel) * _positions(_shape(layer, "input"), layer)
    if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
        return 2 * (_size(layer.depthwise_kernel) + _size(layer.pointwise_kernel)) * \
            _positions(_shape(layer, "output"), layer)
    if isinstance(layer, (layers.DepthwiseConv1D, layers.DepthwiseConv2D)):
        return 2 * _size(layer.kernel) * _positions(_shape(layer, "output"), layer)
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)):
        # The kernel is (*window, input channels / groups, filters): grouped convolutions too.
        return 2 * _size(layer.kernel) * _positions(_shape(layer, "output"), layer)
    if isinstance(layer, (layers.SimpleRNN, layers.GRU, layers.LSTM)):
        return _recurrent_flops(layer, layer)
    if isinstance(layer, layers.MultiHeadAttention):
        return _attention_flops(layer)
    if isinstance(layer, layers.Embedding):
        return 0  # a table lookup; its gradient a scatter-add
    if isinstance(layer, _normalizations()) or not layer.weights:
        return 0
    raise Uncounted(f"{layer.name} ({type(layer).__name__}): a layer kind fitbench does not count FLOPs for")


def _recurrent_flops(layer: keras.layers.Layer, called: keras.layers.Layer) -> int:
    """A SimpleRNN, GRU or LSTM: its kernel and recurrent kernel at every step of the sequence
    given to `called` (the layer itself, or the Bidirectional wrapping it)."""
    if not isinstance(layer, (keras.layers.SimpleRNN, keras.layers.GRU, keras.layers.LSTM)):
        raise Uncounted(f"{layer.name} ({type(layer).__name__}): a recurrent layer fitbench does not count FLOPs for")
    steps = _shape(called, "input")[1]
    if steps is None:
        raise Uncounted(f"{called.name} ({type(called).__name__}): sequences of unknown length")
    return 2 * (_size(layer.cell.kernel) + _size(layer.cell.recurrent_kernel)) * int(steps)


def _attention_flops(layer: keras.layers.MultiHeadAttention) -> int:
    """Query, key, value and output projections, plus QK^T and the weighted sum of values."""
    try:
        query, value, *key = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    except (AttributeError, ValueError) as error:
        raise Uncounted(f"{layer.name} (MultiHeadAttention): no input shape recorded ({error})") from error
    key = key[0] if key else value
    positions = [_positions(tuple(t.shape), layer) for t in (query, key, value)]
    query_positions, key_positions, value_positions = positions
    heads, key_dim, value_dim = layer.num_heads, layer.key_dim, layer.value_dim or layer.key_dim
    projections = 2 * (query_positions * _size(layer.query_dense.kernel) + key_positions * _size(layer.key_dense.kernel)
                       + value_positions * _size(layer.value_dense.kernel)
                       + query_positions * _size(layer.output_dense.kernel))
    products = 2 * heads * query_positions * key_positions * (key_dim + value_dim)
    return projections + products


@functools.cache
def _normalizations() -> tuple:
    """Weighted layers whose work is O(outputs), left out like bias adds."""
    layers = keras.layers
    return layers.BatchNormalization, layers.LayerNormalization, layers.GroupNormalization, layers.Normalization


def _walk(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """The model's layers, with those of the models nested in it."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        else:
            yield layer


@dataclass(frozen=True)
class Count:
    """Training FLOPs per sample, or 0 and why they are not known."""

    per_sample: int
    unknown: str = ""


def training_flops(model: keras.Model) -> Count:
    """Forward plus backward FLOPs of one training sample through `model` (see the module docstring)."""
    total, first = 0, True
    try:
        for layer in _walk(model):
            flops = forward_flops(layer)
            total += flops * (2 if first else 3)
            first = first and not layer.trainable_weights
    except Uncounted as reason:
        return Count(0, str(reason))
    return Count(total)


def training_flops_per_sample(model: keras.Model) -> int:
    """Forward plus backward FLOPs of one training sample through `model` (0 when not known)."""
    return training_flops(model).per_sample


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
    name = f"{workload['model']}({sorted(workload['model_args'].items())}, {workload['input_shape']})"
    return EpochWork(steps=times * steps, flops=times * record.flops_per_sample * (samples + evaluated / 3),
                     model=name, trainings=times)
