"""The per-epoch runner: trains a workload's whole schedule, one timed round per epoch.

Epoch 1 runs through ``model.fit`` (it builds the model under the strategy and traces the
train step) and is timed and recorded on its own as ``first_epoch_seconds``. Epochs 2..N are
pytest-benchmark rounds (``benchmark.pedantic``, one iteration each), so the benchmark
statistics are steady-state seconds per epoch. A round is what one epoch of a multi-epoch
``fit`` runs, with Keras' own ``CallbackList``: reset the metrics, call the compiled
``train_function`` once per batch between the batch hooks (which, as in ``fit``, read each
step's logs back to the host), read the epoch's metrics; then synchronize the devices before
the clock is read. The batches of epochs 2..N come from one iterator opened before the first
round (each epoch its own seeded permutation, already distributed), as ``fit`` on a repeated
dataset keeps one iterator. In an interleaved run (``fitbench interleave``) each timed epoch,
epoch 1 included, first waits for its turn, untimed, and records the turn's number. Rounds
do not call ``fit``: each call under a strategy also opens dataset iterators to build the
model, about 0.15 s on a 2-core CPU (``fitbench overhead`` prints it), which a multi-epoch
``fit`` pays once, not per epoch. Validation happens between rounds, untimed. Without an
enabled benchmark (``--benchmark-disable``, pytest-xdist) the same schedule runs in a plain
loop.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from fitbench import devices, memory, turns
from fitbench.datasets import Dataset, Splits, split
from fitbench.devices import Device
from fitbench.flops import gflops_per_second, training_flops_per_sample
from fitbench.workloads import Schedule, Workload

METRIC = "accuracy"


class Benchmark(Protocol):
    """What the runner needs of pytest-benchmark's fixture."""

    enabled: bool
    extra_info: dict

    def pedantic(self, target, args=(), kwargs=None, setup=None, teardown=None, rounds=1,
                 warmup_rounds=0, iterations=1): ...


@dataclass
class EpochRecord:
    seconds: float
    loss: float
    accuracy: float
    val_loss: float = float("nan")
    val_accuracy: float = float("nan")
    turn: int | None = None  # the ring's turn it ran in (interleaved runs only)


@dataclass
class Result:
    workload: Workload
    profile: str
    schedule: Schedule
    device: Device
    sizes: dict[str, int]
    params: int
    flops_per_sample: int
    samples_per_epoch: int  # samples trained per epoch (a TPU drops the partial last batch)
    epochs: list[EpochRecord] = field(default_factory=list)
    test_loss: float = float("nan")
    test_accuracy: float = float("nan")
    memory: dict[str, int | None] = field(default_factory=dict)
    # Set by assert_accuracy: which accuracy the test checks and its threshold.
    accuracy_metric: str | None = None
    accuracy_threshold: float | None = None
    # Where the result sits in the suite (set by the `train` fixture): test function, its
    # parameters without the device, pytest-benchmark's name and group, the gate marker.
    experiment: str = ""
    case: str = ""
    name: str = ""
    group: str | None = None
    gate: dict[str, float] = field(default_factory=dict)
    interleave: dict[str, Any] | None = None  # the ring this run took turns in

    def assert_accuracy(self, metric: str, threshold: float, note: str = "") -> None:
        """Assert `metric` ('test_accuracy' or 'val_accuracy') >= `threshold`; record both.

        The failure message gives the value reached, the threshold and `note`."""
        value = getattr(self, metric)
        self.accuracy_metric, self.accuracy_threshold = metric, threshold
        assert value >= threshold, (
            f"{metric.replace('_', ' ')} {value:.4f} is below the threshold {threshold} "
            f"({self.workload.name}, batch size {self.workload.batch_size}, profile {self.profile}, "
            f"{self.device.kind}{'; ' + note if note else ''})"
        )

    @property
    def epoch_seconds(self) -> list[float]:
        return [epoch.seconds for epoch in self.epochs]

    @property
    def first_epoch_seconds(self) -> float:
        return self.epochs[0].seconds

    @property
    def median_epoch_seconds(self) -> float:
        """Median of the steady-state epochs (2..N), the same sample pytest-benchmark reports."""
        return statistics.median(self.epoch_seconds[1:])

    @property
    def samples_per_second(self) -> float:
        return self.samples_per_epoch / self.median_epoch_seconds

    @property
    def gflops_per_second(self) -> float:
        """Training GFLOP/s achieved over the median steady-state epoch."""
        return gflops_per_second(self.flops_per_sample, self.samples_per_epoch, self.median_epoch_seconds)

    @property
    def val_accuracy(self) -> float:
        return self.epochs[-1].val_accuracy

    def extra_info(self) -> dict[str, Any]:
        """Everything a reader of the JSON needs to interpret (and reproduce) this result;
        plain values only (it also travels from xdist workers in the test reports)."""
        workload, schedule = self.workload, self.schedule
        global_batch = workload.batch_size
        return {
            "experiment": self.experiment,
            "case": self.case,
            "name": self.name,
            "group": self.group,
            "gate": self.gate,
            "accuracy_metric": self.accuracy_metric,
            "accuracy_threshold": self.accuracy_threshold,
            "workload": workload.name,
            "dataset": workload.dataset,
            "model": workload.model.__name__,
            "model_args": {key: list(v) if isinstance(v, tuple) else v for key, v in workload.model_args.items()},
            "params": self.params,
            "flops_per_sample": self.flops_per_sample,
            "optimizer": workload.optimizer,
            "loss": workload.loss,
            "batch_size": global_batch,
            "replicas": self.device.replicas,
            "per_replica_batch_size": global_batch // self.device.replicas,
            "seed": workload.seed,
            "profile": self.profile,
            "epochs": schedule.epochs,
            "schedule_bound": schedule.bound,
            "train_samples": self.sizes["train"],
            "samples_per_epoch": self.samples_per_epoch,
            "validation_samples": self.sizes["validation"],
            "test_samples": self.sizes["test"],
            "device": self.device.kind,
            "device_description": self.device.description,
            "first_epoch_seconds": self.first_epoch_seconds,
            "epoch_seconds": self.epoch_seconds,
            "median_epoch_seconds": self.median_epoch_seconds,
            "samples_per_second": self.samples_per_second,
            "gflops_per_second": self.gflops_per_second,
            "gflops_per_second_per_epoch": [
                gflops_per_second(self.flops_per_sample, self.samples_per_epoch, s) for s in self.epoch_seconds
            ],
            "train_loss": [e.loss for e in self.epochs],
            "train_accuracy": [e.accuracy for e in self.epochs],
            "val_loss": [e.val_loss for e in self.epochs],
            "val_accuracy": [e.val_accuracy for e in self.epochs],
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
            "validation_is_test_set": workload.validation == "test",
            "interleave": self.interleave,
            "epoch_turns": [e.turn for e in self.epochs],
            **self.memory,
        }


class EpochRunner:
    """Trains one workload on one device; see the module docstring for what is timed."""

    def __init__(self, workload: Workload, profile: str, device: Device, dataset: Dataset):
        self.workload = workload
        self.profile = profile
        self.schedule = workload.schedule(profile, device.kind)
        self.device = device
        if workload.batch_size % device.replicas:
            raise ValueError(
                f"batch size {workload.batch_size} is the global batch and must divide evenly over "
                f"{device.replicas} replicas on {device.kind}; choose a multiple of {device.replicas}"
            )
        self.splits: Splits = split(
            dataset,
            workload.validation,
            workload.validation_at,
            workload.input_shape,
            self.schedule.train_samples,
            self.schedule.validation_samples,
            self.schedule.test_samples,
            workload.pixel_scale,
        )
        # TPUs need static shapes: a partial last batch would trigger a new compilation.
        self.drop_remainder = device.is_tpu
        self.model: keras.Model | None = None
        self.records: list[EpochRecord] = []
        self._last_epoch_seconds = float("nan")
        self._turn: int | None = None
        self._iterator = None

    def build(self) -> keras.Model:
        keras.utils.set_random_seed(self.workload.seed)
        with self.device.strategy.scope():
            model = self.workload.model(input_shape=self.workload.input_shape, **self.workload.model_args)
            model.compile(optimizer=self.workload.optimizer, loss=self.workload.loss, metrics=[METRIC])
        return model

    def prepare_inputs(self) -> None:
        # Converted once, on the host; each epoch's pipeline only gathers batches from them.
        with tf.device("/cpu:0"):
            self._x_train = tf.constant(self.splits.x_train)
            self._y_train = tf.constant(self.splits.y_train)
        batch = self.workload.batch_size
        self._val_data = self._eval_dataset(self.splits.x_val, self.splits.y_val, batch)
        self._test_data = self._eval_dataset(self.splits.x_test, self.splits.y_test, batch)

    @staticmethod
    def _eval_dataset(x: np.ndarray, y: np.ndarray, batch: int) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).prefetch(tf.data.AUTOTUNE)

    def epoch_data(self, first: int = 0, last: int | None = None) -> tf.distribute.DistributedDataset:
        """Epochs first..last (default: just `first`) of training data, back to back, distributed
        over the strategy's replicas; each epoch a fresh permutation seeded by its number."""
        dataset = self.batches(first)
        for epoch in range(first + 1, (first if last is None else last) + 1):
            dataset = dataset.concatenate(self.batches(epoch))
        return self.device.strategy.experimental_distribute_dataset(dataset)

    def batches(self, epoch: int) -> tf.data.Dataset:
        """Epoch `epoch`'s batches, in the order of a permutation seeded by the epoch."""
        count, batch = len(self.splits.y_train), self.workload.batch_size
        order = np.random.default_rng([self.workload.seed, epoch]).permutation(count)
        full = count // batch * batch
        # Batches of indices (not of samples) so the pipeline gathers whole batches at once.
        indices = tf.data.Dataset.from_tensor_slices(order[:full].reshape(-1, batch))
        if self.steps_per_epoch * batch > full:
            indices = indices.concatenate(tf.data.Dataset.from_tensors(order[full:]))
        x, y = self._x_train, self._y_train
        return indices.map(
            lambda index: (tf.gather(x, index), tf.gather(y, index)),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).prefetch(tf.data.AUTOTUNE)

    @property
    def samples_per_epoch(self) -> int:
        return min(self.steps_per_epoch * self.workload.batch_size, len(self.splits.y_train))

    @property
    def steps_per_epoch(self) -> int:
        count, batch = len(self.splits.y_train), self.workload.batch_size
        return count // batch if self.drop_remainder else -(-count // batch)

    def first_epoch(self, data: tf.distribute.DistributedDataset) -> None:
        """Epoch 1 through Keras' own fit: builds the model under the strategy, traces the step."""
        start = time.perf_counter()
        self.model.fit(data, epochs=1, shuffle=False, verbose=0)
        devices.synchronize()
        self._last_epoch_seconds = time.perf_counter() - start
        self._last_logs = self.model.get_metrics_result()
        # The hooks fit() calls around each batch, with the History it always adds.
        self._callbacks = keras.callbacks.CallbackList(add_history=True, model=self.model)
        self._callbacks.on_train_begin()

    def open_rounds(self) -> None:
        """Before the rounds, untimed: one iterator over epochs 2..N, as fit() keeps one over a
        repeated dataset. Opening a distributed iterator costs ~80 ms on a 2-core CPU (more
        than a small epoch), so it is not opened per round; between rounds it prefetches the
        next epoch, as fit's does during validation."""
        self._iterator = iter(self.epoch_data(1, self.schedule.epochs - 1))

    def take_turn(self) -> None:
        """Before a timed epoch, untimed: in an interleaved run, wait until it is this run's turn."""
        self._turn = turns.take()

    def train_epoch(self) -> None:
        """The timed round: what one epoch of a multi-epoch fit() runs, then a device sync."""
        start = time.perf_counter()
        model, callbacks, epoch, iterator = self.model, self._callbacks, len(self.records), self._iterator
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        for step in range(self.steps_per_epoch):
            callbacks.on_train_batch_begin(step)
            logs = model.train_function(iterator)
            callbacks.on_train_batch_end(step, logs)
        self._last_logs = model.get_metrics_result()
        callbacks.on_epoch_end(epoch, self._last_logs)
        devices.synchronize()
        self._last_epoch_seconds = time.perf_counter() - start

    def record_epoch(self, *_unused: Any) -> None:
        """Between rounds: read the epoch's training metrics and evaluate on the validation set."""
        training = self._last_logs
        validation = self.model.evaluate(self._val_data, verbose=0, return_dict=True)
        self.records.append(
            EpochRecord(
                seconds=self._last_epoch_seconds,
                loss=float(training["loss"]),
                accuracy=float(training[METRIC]),
                val_loss=float(validation["loss"]),
                val_accuracy=float(validation[METRIC]),
                turn=self._turn,
            )
        )

    def run(self, benchmark: Benchmark | None = None) -> Result:
        """Train the whole schedule; epochs 2..N are `benchmark`'s rounds when it is enabled."""
        host_reset = memory.reset(self.device.strategy)
        self.prepare_inputs()
        self.model = self.build()
        self.take_turn()
        self.first_epoch(self.epoch_data(0))  # tracing included, recorded on its own
        self.record_epoch()
        self.open_rounds()
        rounds = self.schedule.epochs - 1
        if benchmark is not None and benchmark.enabled:
            benchmark.pedantic(self.train_epoch, setup=self.take_turn, teardown=self.record_epoch,
                               rounds=rounds, warmup_rounds=0, iterations=1)
        else:
            for _ in range(rounds):
                self.take_turn()
                self.train_epoch()
                self.record_epoch()
        self._iterator = None
        test = self.model.evaluate(self._test_data, verbose=0, return_dict=True)
        return Result(
            workload=self.workload,
            profile=self.profile,
            schedule=self.schedule,
            device=self.device,
            sizes=self.splits.sizes,
            params=self.model.count_params(),
            flops_per_sample=training_flops_per_sample(self.model),
            samples_per_epoch=self.samples_per_epoch,
            epochs=self.records,
            test_loss=float(test["loss"]),
            test_accuracy=float(test[METRIC]),
            memory=memory.peaks(self.device.strategy, host_reset),
            interleave=ring.describe() if (ring := turns.current()) is not None else None,
        )


def train(workload: Workload, profile: str, device: Device, dataset: Dataset,
          benchmark: Benchmark | None = None) -> Result:
    """Train `workload` under `profile` on `device`; epochs 2..N are `benchmark`'s rounds when
    given. The record (`Result.extra_info()`) goes to the benchmark's extra_info once the test
    has checked its accuracy and the fixture has placed it in the suite (fitbench.plugin)."""
    return EpochRunner(workload, profile, device, dataset).run(benchmark)
