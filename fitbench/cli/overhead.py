"""How much the per-epoch runner adds to an epoch, against a plain ``model.fit(epochs=N)``.

The reference is one ``fit`` call for the whole schedule, with the runner's validation set as
``validation_data`` (so that, as in the runner, each epoch's training is followed by an
evaluation that the clock leaves out), and a callback that reads the clock when each epoch
begins and when its training ends (``on_test_begin``: fit validates after the epoch's metrics
are read), on the same input pipeline the runner uses (samples gathered by batches of indices
from tensors converted once), repeated and given ``steps_per_epoch``, the form Keras documents
for a tf.data pipeline: one iterator serves every epoch.

Two more references show what else an epoch of ``fit`` can cost. On the same pipeline *not*
repeated, Keras' EpochIterator opens a new iterator at the end of every epoch (inside the
epoch) and, because ``steps_per_epoch`` is None, another at the start of the next, tearing
the first down while it prefetches: that churn is Keras', not training's. On the NumPy arrays
(the notebooks' way) its array adapter adds its own per-epoch input cost; the runner's
``numpy`` pipeline variant, which runs ``fit``'s epoch loop over that adapter, is compared with
it (interval as for the runner). All run in the same process on the same data and device,
alternating.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from dataclasses import dataclass

import keras

from fitbench.core import stats
from fitbench.measure import runner
from fitbench.measure.datasets import Dataset
from fitbench.measure.devices import Device
from fitbench.measure.workloads import Workload
from fitbench.present import progress


class EpochClock(keras.callbacks.Callback):
    """Reads the clock when each epoch begins and when its training ends: at the validation's
    start when fit validates (it reads the epoch's metrics first), else at the epoch's end."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()

    def _stop(self) -> None:
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None


@dataclass
class Comparison:
    """Steady-state epoch seconds (epochs 2..N, every repeat) of each way of training."""

    batch_size: int
    plain_fit_seconds: list[float]  # fit on the repeated pipeline (one iterator)
    runner_seconds: list[float]
    numpy_fit_seconds: list[float]
    churn_fit_seconds: list[float]  # fit on the pipeline not repeated (iterators per epoch)
    numpy_runner_seconds: list[float]  # the runner's numpy pipeline variant

    @property
    def numpy_runner_median(self) -> float:
        return statistics.median(self.numpy_runner_seconds)

    def numpy_interval(self, confidence: float = 0.90) -> tuple[float, float, float]:
        """The numpy variant's runner / fit on NumPy - 1, and its interval."""
        shift = stats.log_shift(self.numpy_fit_seconds, self.numpy_runner_seconds, confidence)
        return shift.ratio - 1, shift.ratio_low - 1, shift.ratio_high - 1

    @property
    def churn_median(self) -> float:
        return statistics.median(self.churn_fit_seconds)

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

    def interval(self, confidence: float = 0.90) -> tuple[float, float]:
        """Distribution-free interval of runner / plain fit - 1 (Hodges-Lehmann, as the gate)."""
        shift = stats.log_shift(self.plain_fit_seconds, self.runner_seconds, confidence)
        return shift.ratio_low - 1, shift.ratio_high - 1


def plain_fit_epoch_seconds(workload: Workload, profile: str, device: Device, dataset: Dataset,
                            numpy_arrays: bool = False, repeat: bool = True) -> list[float]:
    """Epoch times of one fit(epochs=N) call: on the runner's input pipeline (repeated, or
    not), or on NumPy arrays."""
    epoch_runner = runner.EpochRunner(workload, profile, device, dataset)
    model = epoch_runner.build()
    clock = EpochClock()
    epochs = epoch_runner.schedule.epochs
    if numpy_arrays:
        splits = epoch_runner.splits
        model.fit(splits.x_train, splits.y_train, batch_size=workload.batch_size, epochs=epochs,
                  verbose=0, callbacks=[clock])
    elif repeat:
        epoch_runner.prepare_inputs()
        # The runner's pipeline in one fixed order (the order changes no cost of a gather), and
        # its validation set: an evaluation between epochs, as the runner's, outside the clock.
        data = device.strategy.experimental_distribute_dataset(epoch_runner.batches(0).repeat())
        model.fit(data, epochs=epochs, steps_per_epoch=epoch_runner.steps_per_epoch, shuffle=False,
                  validation_data=epoch_runner.validation_data, verbose=0, callbacks=[clock])
    else:
        epoch_runner.prepare_inputs()
        model.fit(epoch_runner.epoch_data(), epochs=epochs, shuffle=False, verbose=0, callbacks=[clock])
    return clock.seconds


def compare(workload: Workload, profile: str, device: Device, dataset: Dataset, repeats: int = 1) -> Comparison:
    """Alternate the ways `repeats` times (each pair in ABBA order); pool their steady-state epochs."""
    comparison = Comparison(workload.batch_size, [], [], [], [], [])
    numpy_variant = workload.but(variant=dataclasses.replace(workload.variant, pipeline="numpy"))
    # The runner as a pytest session runs it: with its live progress line after each epoch.
    lines = progress.Progress(lambda line: print(line, file=sys.stderr, flush=True))
    epochs = workload.schedule(profile, device.kind).epochs
    def plain() -> None:
        comparison.plain_fit_seconds.extend(plain_fit_epoch_seconds(workload, profile, device, dataset)[1:])

    def ours() -> None:
        comparison.runner_seconds.extend(runner.train(workload, profile, device, dataset,
                                                      on_epoch=lines.test(workload.name, epochs)).epoch_seconds[1:])

    def numpy_fit() -> None:
        comparison.numpy_fit_seconds.extend(plain_fit_epoch_seconds(workload, profile, device, dataset,
                                                                    numpy_arrays=True)[1:])

    def numpy_runner() -> None:
        comparison.numpy_runner_seconds.extend(runner.train(numpy_variant, profile, device, dataset).epoch_seconds[1:])

    for repeat in range(repeats):
        # ABBA: whichever side runs second in a pair gains or loses ~3% on this VM (measured), so
        # the order alternates between repeats.
        first, second = ((plain, ours), (ours, plain))[repeat % 2]
        first()
        second()
        comparison.churn_fit_seconds += plain_fit_epoch_seconds(workload, profile, device, dataset,
                                                                repeat=False)[1:]
        first, second = ((numpy_fit, numpy_runner), (numpy_runner, numpy_fit))[repeat % 2]
        first()
        second()
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
