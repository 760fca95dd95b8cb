"""FLOP counts from layer shapes, checked against hand-computed values."""

import keras
import pytest

from fitbench.measure import flops
from fixtures import models


def test_mlp_flops_by_hand():
    model = models.mlp((784,), units=(128,))
    first, second = 2 * 784 * 128, 2 * 128 * 10
    assert flops.training_flops_per_sample(model) == 2 * first + 3 * second


def test_deeper_means_more_flops():
    shallow = flops.training_flops_per_sample(models.mlp((784,), units=(128,)))
    deep = flops.training_flops_per_sample(models.mlp((784,), units=(128, 128)))
    assert deep - shallow == 3 * 2 * 128 * 128


def test_conv_flops_by_hand():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, (3, 3), padding="same")])
    assert flops.forward_flops(model.layers[0]) == 2 * 3 * 3 * 3 * 4 * 8 * 8


def test_gflops_per_second():
    assert flops.gflops_per_second(2_000_000, 1000, 2.0) == 1.0


def profiler_float_ops(model, training: bool) -> int:
    """TensorFlow's own count (tf.compat.v1.profiler) of one sample's forward pass, or of a
    training step's forward and backward passes (gradients of every weight)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)

    def step(x):
        if not training:
            return model(x, training=False)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, training=False))
        return tape.gradient(loss, model.trainable_weights)

    graph = convert_variables_to_constants_v2(tf.function(step).get_concrete_function(spec)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                         options=options).total_float_ops


@pytest.mark.parametrize("name, build", [
    ("batch-size MLP", lambda: models.mlp((28, 28), units=(300, 100))),
    ("MNIST MLP", lambda: models.mlp((28, 28), units=(128,))),
    ("Colab CNN", lambda: models.cnn((28, 28, 1))),
])
def test_flop_counts_agree_with_tensorflows_profiler(name, build):
    # The profiler also counts bias adds, activations, pooling and batch norm, which fitbench
    # leaves out (O(outputs)): they must stay within a few percent of the matrix products.
    model = build()
    ours_forward = sum(flops.forward_flops(layer) for layer in model.layers)
    theirs_forward = profiler_float_ops(model, training=False)
    assert ours_forward <= theirs_forward <= ours_forward * 1.05, (name, ours_forward, theirs_forward)
    ours_training = flops.training_flops_per_sample(model)
    theirs_training = profiler_float_ops(model, training=True)
    assert 0.95 <= theirs_training / ours_training <= 1.10, (name, ours_training, theirs_training)


def test_epoch_work_counts_steps_flops_evaluations_and_a_twin_from_a_record():
    """What one epoch computes, read from a finished test's record (no model is built)."""
    import dataclasses

    from tests.helpers import make_record

    record = make_record("t[a]", epoch_seconds=[2.0, 1.0, 1.0], samples=1000)
    record.flops_per_sample = per_sample = 2 * 784 * 16 * 2 + 2 * 16 * 10 * 3
    record.measurement = dataclasses.replace(
        record.measurement, global_batch=64,
        schedule={**record.measurement.schedule, "samples_per_epoch": 1000, "validation_samples": 500,
                  "test_samples": 300},
        workload={**record.measurement.workload, "model": "mlp", "model_args": {"units": [16]},
                  "input_shape": [28, 28]})
    for epoch in record.epochs:
        epoch.test_metric = float("nan")  # the test set evaluated once, at the end
    work = flops.epoch_work(record)
    assert (work.steps, work.flops, work.trainings) == (16, per_sample * (1000 + 500 / 3), 1)
    assert work.model.startswith("mlp(") and "16" in work.model  # tests of one model share a FLOP rate
    for epoch in record.epochs:
        epoch.test_metric = 0.8  # evaluated after every epoch (time to target)
    record.reference = {"variant": {}, "epoch_seconds": [1.0, 1.0, 1.0]}  # a twin trained in turns
    tracked = flops.epoch_work(record)
    assert (tracked.steps, tracked.flops, tracked.trainings) == (32, 2 * per_sample * (1000 + 800 / 3), 2)
