"""FLOP counts from layer shapes, checked against hand-computed values."""

import keras

from fitbench import flops, models


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
