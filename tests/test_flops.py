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


def profiler_products(model, inputs) -> int:
    """TensorFlow's profiler count of the matrix products and convolutions (MatMul, BatchMatMul,
    Conv*, DepthwiseConv*) of one sample's forward pass: what fitbench counts, without the
    element-wise work of gates and activations."""
    import tensorflow as tf

    specs = [tf.TensorSpec([1, *shape], tf.float32) for shape in inputs]
    graph = tf.function(lambda *x: model(list(x) if len(x) > 1 else x[0], training=False)
                        ).get_concrete_function(*specs).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"], options["account_type_regexes"] = "none", [".*MatMul.*", "Conv.*", "DepthwiseConv.*"]
    return tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                         options=options).total_float_ops


def one_layer(layer, *shapes):
    inputs = [keras.Input(shape) for shape in shapes]
    return keras.Model(inputs, layer(*inputs)), layer


# (kind, layer, input shapes, what the profiler does not count, by hand). The recurrent layers
# are unrolled so that the profiler sees every time step (a loop's body is counted once).
KINDS = [
    ("Dense on a sequence", lambda: keras.layers.Dense(16), [(20, 8)], 0),
    ("Conv1D", lambda: keras.layers.Conv1D(16, 3), [(20, 8)], 0),
    ("Conv3D", lambda: keras.layers.Conv3D(4, 3), [(6, 6, 6, 2)], 0),
    ("SeparableConv2D", lambda: keras.layers.SeparableConv2D(8, 3), [(10, 10, 4)], 0),
    ("DepthwiseConv2D", lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2), [(10, 10, 4)], 0),
    ("SimpleRNN", lambda: keras.layers.SimpleRNN(16, unroll=True), [(20, 8)], 0),
    ("GRU", lambda: keras.layers.GRU(16, unroll=True), [(20, 8)], 0),
    ("LSTM", lambda: keras.layers.LSTM(16, unroll=True), [(20, 8)], 0),
    ("Bidirectional GRU", lambda: keras.layers.Bidirectional(keras.layers.GRU(16, unroll=True)), [(20, 8)], 0),
    # Its two attention products are einsums, which the profiler does not count: 2 heads x 10
    # queries x 12 keys x (8 + 8) dims x 2.
    ("MultiHeadAttention", lambda: keras.layers.MultiHeadAttention(num_heads=2, key_dim=8), [(10, 16), (12, 16)],
     2 * 2 * 10 * 12 * (8 + 8)),
]


@pytest.mark.parametrize("kind, build, shapes, uncounted", KINDS, ids=[k[0] for k in KINDS])
def test_each_layer_kind_agrees_with_tensorflows_profiler(kind, build, shapes, uncounted):
    model, layer = one_layer(build(), *shapes)
    ours, theirs = flops.forward_flops(layer), profiler_products(model, shapes) + uncounted
    assert theirs > 0 and abs(ours - theirs) <= 0.10 * theirs, (kind, ours, theirs)
    assert flops.training_flops(model).per_sample == 2 * ours  # the first weighted layer: no input gradient


def test_the_kinds_the_profiler_counts_otherwise_by_hand():
    # Grouped: each of 8 filters sees 4 / 2 channels (the profiler counts none of it).
    _, grouped = one_layer(keras.layers.Conv2D(8, 3, groups=2), (10, 10, 4))
    assert flops.forward_flops(grouped) == 2 * (3 * 3 * 2 * 8) * (8 * 8)
    # Transposed: each of the 10 x 10 input positions multiplies the whole 3x3x8x4 kernel (the
    # profiler counts the 12 x 12 output positions, the padding's products included).
    _, transposed = one_layer(keras.layers.Conv2DTranspose(8, 3), (10, 10, 4))
    assert flops.forward_flops(transposed) == 2 * (3 * 3 * 8 * 4) * (10 * 10)
    # An embedding is a lookup; the Dense after it still needs its input gradient (x3).
    model, _ = one_layer(keras.Sequential([keras.layers.Embedding(100, 8), keras.layers.Dense(4)]), (20,))
    assert flops.training_flops(model).per_sample == 3 * 2 * 8 * 4 * 20


def test_a_layer_it_cannot_count_makes_the_count_unknown_never_a_smaller_number():
    from fitbench.present import format
    from tests.helpers import make_record

    class Scale(keras.layers.Layer):  # a user's own weighted layer
        def build(self, shape):
            self.scale = self.add_weight(shape=(shape[-1],))

        def call(self, x):
            return x * self.scale

    inputs = keras.Input((16,))
    model = keras.Model(inputs, keras.layers.Dense(10)(Scale(name="scale")(inputs)))
    count = flops.training_flops(model)
    assert count == flops.Count(0, "scale (Scale): a layer kind fitbench does not count FLOPs for")
    variable = keras.Input((None, 8))  # sequences of any length
    assert "sequences of unknown length" in flops.training_flops(
        keras.Model(variable, keras.layers.GRU(4)(variable))).unknown
    record = make_record("t[cpu]")
    record.flops_per_sample, record.flops_unknown = 0, count.unknown
    assert format.efficiency(record, {"cpu": {"float32": 50.0}}) == "n/a"
    assert type(record).from_json(record.to_json()).flops_unknown == count.unknown


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
