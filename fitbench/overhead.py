"""How much the per-epoch runner adds to an epoch, against a plain ``model.fit(epochs=N)``.

The reference is one ``fit`` call for the whole schedule with a callback that reads the clock
at the start and end of each epoch (no validation data, so the callback's epoch is training
only, like the runner's rounds), on the same input pipeline the runner uses (samples gathered
by batches of indices from tensors converted once). A second reference is the notebooks'
own way, ``fit`` on the NumPy arrays: there Keras' array adapter adds its own per-epoch input
cost, which the runner keeps out of its rounds. All run in the same process on the same data
and device, alternating.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import keras

from fitbench import runner
from fitbench.datasets import Dataset
from fitbench.devices import Device
from fitbench.workloads import Workload


class EpochClock(keras.callbacks.Callback):
    """Reads the clock at each epoch's start and end; nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


@dataclass
class Comparison:
    """Steady-state epoch seconds (epochs 2..N, every repeat) of each way of training."""

    batch_size: int
    plain_fit_seconds: list[float]
    runner_seconds: list[float]
    numpy_fit_seconds: list[float]

    @property
    def plain_median(self) -> float:
        return statistics.median(self.plain_fit_seconds)

    @property
    def runner_median(self) -> float:
        return statistics.median(self.runner_seconds)

    @property
    def numpy_median(self) -> float:
        return statistics.median(self.numpy_fit_seconds)

    @property
    def overhead(self) -> float:
        """Relative difference of the steady-state medians: runner / plain fit - 1."""
        return self.runner_median / self.plain_median - 1


def plain_fit_epoch_seconds(workload: Workload, profile: str, device: Device, dataset: Dataset,
                            numpy_arrays: bool = False) -> list[float]:
    """Epoch times of one fit(epochs=N) call: on the runner's input pipeline, or on NumPy arrays."""
    epoch_runner = runner.EpochRunner(workload, profile, device, dataset)
    model = epoch_runner.build()
    clock = EpochClock()
    epochs = epoch_runner.schedule.epochs
    if numpy_arrays:
        splits = epoch_runner.splits
        model.fit(splits.x_train, splits.y_train, batch_size=workload.batch_size, epochs=epochs,
                  verbose=0, callbacks=[clock])
    else:
        epoch_runner.prepare_inputs()
        # The runner's pipeline in one fixed order: the order changes no cost of a gather.
        model.fit(epoch_runner.epoch_data(), epochs=epochs, shuffle=False, verbose=0, callbacks=[clock])
    return clock.seconds


def compare(workload: Workload, profile: str, device: Device, dataset: Dataset, repeats: int = 1) -> Comparison:
    """Alternate the three ways `repeats` times; pool their steady-state epochs."""
    comparison = Comparison(workload.batch_size, [], [], [])
    for _ in range(repeats):
        comparison.plain_fit_seconds += plain_fit_epoch_seconds(workload, profile, device, dataset)[1:]
        comparison.runner_seconds += runner.train(workload, profile, device, dataset).epoch_seconds[1:]
        comparison.numpy_fit_seconds += plain_fit_epoch_seconds(workload, profile, device, dataset,
                                                                numpy_arrays=True)[1:]
    return comparison


def fit_call_seconds(device: Device, calls: int = 50) -> float:
    """Median wall time of a fit() call on a one-batch epoch: what each extra call costs."""
    import numpy as np
    import tensorflow as tf

    with device.strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    data = device.strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors((np.zeros((1, 4), np.float32), np.zeros((1, 1), np.float32)))
    )
    model.fit(data, epochs=1, shuffle=False, verbose=0)  # trace once
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        model.fit(data, epochs=1, shuffle=False, verbose=0)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)
