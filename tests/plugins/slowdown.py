"""Test-only: plant a known slowdown in every timed epoch, to measure what the gate detects.

`pytest -p tests.plugins.slowdown --plant-slowdown 0.2 ...` makes each timed round sleep for
20% of the time its training took, inside the round (so both pytest-benchmark's clock and
the runner's see it). Sleeping uses no CPU, so the slowdown is exactly the planted fraction.

`--plant-input-work UNITS` slows the input pipeline instead: a tf.data map after the runner's
own, on tf.data's threads, multiplies each batch by a fixed random matrix of UNITS columns
(2 x features x UNITS FLOPs a sample: preprocessing the training waits for or shares the
cores with) and passes the batch on unchanged. What it costs an epoch is measured, not set.
"""

from __future__ import annotations

import time

from fitbench.measure.runner import EpochRunner


def pytest_addoption(parser):
    parser.getgroup("fitbench").addoption(
        "--plant-slowdown", type=float, default=0.0, metavar="FRACTION",
        help="(tests only) sleep FRACTION x each timed epoch's training time inside the epoch",
    )
    parser.getgroup("fitbench").addoption(
        "--plant-input-work", type=int, default=0, metavar="UNITS",
        help="(tests only) a tf.data map of 2 x features x UNITS FLOPs a training sample",
    )


def pytest_configure(config):
    fraction = config.getoption("plant_slowdown")
    if fraction > 0:
        plant(fraction)
    units = config.getoption("plant_input_work")
    if units > 0:
        plant_input_work(units)


def plant(fraction: float) -> None:
    train_epoch = EpochRunner.train_epoch

    def slowed_train_epoch(self, *args, **kwargs):
        start = time.perf_counter()
        train_epoch(self, *args, **kwargs)
        time.sleep(fraction * (time.perf_counter() - start))
        self._last_epoch_seconds = time.perf_counter() - start

    EpochRunner.train_epoch = slowed_train_epoch


def plant_input_work(units: int) -> None:
    import tensorflow as tf

    batches = EpochRunner.batches

    def costly_batches(self, epoch: int):
        def work(x, y):
            features = x.shape[1:].num_elements()  # known: a sample's shape is fixed
            flat = tf.reshape(tf.cast(x, tf.float32), [-1, features])
            weights = tf.random.stateless_uniform([features, units], seed=[0, epoch])
            cost = tf.reduce_sum(tf.matmul(flat, weights))
            # The batch passes unchanged but depends on the work's result: tf.data prunes work that
            # only a control dependency keeps (measured: the map cost nothing).
            nothing = tf.cast(tf.minimum(tf.abs(cost), 0.0), x.dtype)
            return x + nothing, y
        return batches(self, epoch).map(work, num_parallel_calls=tf.data.AUTOTUNE)

    EpochRunner.batches = costly_batches
