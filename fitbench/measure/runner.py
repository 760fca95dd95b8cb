"""The per-epoch runner: trains a workload's whole schedule, one timed round per epoch.

Epoch 1 runs through ``model.fit`` (it builds the model under the strategy and traces the
train step) and is timed and recorded on its own as ``first_epoch_seconds``. Epochs 2..N are
pytest-benchmark rounds (``benchmark.pedantic``, one iteration each), so the benchmark
statistics are steady-state seconds per epoch. A round is the training of one epoch of a
multi-epoch ``fit``, with Keras' own ``CallbackList``: the compiled ``train_function`` once
per batch between the batch hooks (which, as in ``fit``, see each step's logs); then the
devices are synchronized before the clock is read. Resetting the metrics before the round and
reading them after it (in a cluster, an all-reduce of each metric over the workers) are
untimed. The batches of epochs 2..N come from one iterator opened before the first
round (each epoch its own seeded permutation, already distributed), as ``fit`` on a repeated
dataset keeps one iterator; a spent iterator is deleted in a background thread (`release`: in
TF 2.21 a deletion can wait up to a minute for tf.data's autotuning thread). In an
interleaved run (``fitbench interleave``) each timed epoch, epoch 1 included, first waits for
its turn, untimed, and records the turn's number. Rounds
do not call ``fit``: each call under a strategy also opens dataset iterators to build the
model, about 0.15 s on a 2-core CPU (``fitbench overhead`` prints it), which a multi-epoch
``fit`` pays once, not per epoch. Validation happens between rounds, untimed, as one traced call
of the model's own ``test_step`` over the whole set (`Evaluation`: Keras' ``evaluate`` gives
the same figures at four times the cost of a small set, most of it opening iterators). Without an
enabled benchmark (``--benchmark-disable``, pytest-xdist) the same schedule runs in a plain
loop.

The workload's `Variant` says how it trains: its precision policy is set while the model is
built and compiled, and restored right after (layers keep the policy they were built with, so
it never leaks into the next test); ``jit_compile`` and ``steps_per_execution`` go to
``compile``. With k steps per execution a round calls the train function once per k steps, as
``fit`` does, on an iterator over that epoch alone (opened between rounds), so the last call of
an epoch stops at the epoch's end. The ``numpy`` pipeline trains from the split's arrays
through Keras' own adapter: epoch 1 is ``fit(x, y)``, and each round runs ``fit``'s epoch loop
over the same ``TFEpochIterator`` that ``fit`` builds (shuffling, batching and distributing in
Keras' code, inside the round, as in a notebook's ``fit``).

In a cluster session (``MultiWorkerMirroredStrategy``, fitbench.processes.cluster) every worker runs the
same schedule in step. Keras 3's ``fit``, ``evaluate`` and train function cannot run under that
strategy (they reduce each step's scalar logs over axis 0 across workers and fail;
keras-team/keras#20585), so there the runner calls Keras' own ``train_step`` and
``test_step`` through ``strategy.run`` in a function of its own (`step_function`) and reads
the epoch's metrics from the model's metric variables, which sum over every replica of every
worker; epoch 1 runs the same loop (tracing included). A round ends when every worker has
finished the epoch: after the device sync, a one-element all-reduce over all workers (a
barrier; it cannot complete before the slowest worker reaches it) is inside the timed round.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from fitbench.core.record import Epoch, Measurement, Record
from fitbench.measure import devices, hardware, memory, models, opprofile
from fitbench.measure.datasets import Arrays, Dataset, Splits, plain_shape, rows, sample_shape, split
from fitbench.measure.devices import Device
from fitbench.measure.flops import training_flops
from fitbench.measure.workloads import Workload, output_metric
from fitbench.processes import turns


class ModelFunctionError(RuntimeError):
    """The workload's model function raised: the user's code, named in one line."""


class Diverged(RuntimeError):
    """The training loss became NaN or infinite; `record` holds the epochs up to that one."""

    def __init__(self, message: str, record: Record | None = None):
        super().__init__(message)
        self.record = record


def make_optimizer(spec: Any) -> keras.optimizers.Optimizer:
    """A new optimizer for one model, from a name ('adam'), a Keras config
    ({'class_name': 'SGD', 'config': {'learning_rate': 0.1}}) or an instance (copied: Keras
    optimizers hold the variables of the one model they train)."""
    if isinstance(spec, keras.optimizers.Optimizer):
        return type(spec).from_config(spec.get_config())
    return keras.optimizers.get(spec)


def describe_optimizer(optimizer: keras.optimizers.Optimizer) -> str:
    """'SGD (learning rate 10000)' for messages."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer
    rate = optimizer.get_config().get("learning_rate")
    return f"{type(optimizer).__name__}" + (f" (learning rate {rate:g})" if isinstance(rate, float) else "")


@dataclass(frozen=True)
class Explain:
    """Profile `steps` more training steps after the schedule, untimed, into `directory`
    (fitbench.measure.opprofile; `--explain-steps`)."""

    steps: int
    directory: Path


class Benchmark(Protocol):
    """What the runner needs of pytest-benchmark's fixture."""

    enabled: bool
    extra_info: dict

    def pedantic(self, target, args=(), kwargs=None, setup=None, teardown=None, rounds=1,
                 warmup_rounds=0, iterations=1): ...


class EpochRunner:
    """Trains one workload on one device; see the module docstring for what is timed."""

    def __init__(self, workload: Workload, profile: str, device: Device, dataset: Dataset,
                 on_epoch: Callable[[Epoch], None] | None = None, track_test: bool = False,
                 explain: Explain | None = None):
        self.workload = workload
        self.explain = explain
        self.variant = workload.variant
        # Evaluate the test set after every epoch (untimed), for time to target when the
        # checked split is the test set.
        self.track_test = track_test
        self.on_epoch = on_epoch  # called between rounds with each epoch's record (live progress)
        self.profile = profile
        self.schedule = workload.schedule(profile, device.kind)
        self.device = device
        if workload.batch_size % device.replicas:
            raise ValueError(
                f"batch size {workload.batch_size} is the global batch and must divide evenly over "
                f"{device.replicas} replicas on {device.kind}; choose a multiple of {device.replicas}"
            )
        self.metric = workload.metric_name  # the key of the checked metric in Keras' logs
        self.dataset = dataset
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
        # Chosen once: where a round's batches come from, and how a step runs (one process or a
        # cluster). The timing loop (train_epoch, epoch_loop) knows neither.
        self.pipeline = pipeline_for(self)
        self.loop: Loop = (Cluster() if isinstance(device.strategy, tf.distribute.MultiWorkerMirroredStrategy)
                           else SingleProcess())
        if isinstance(self.loop, Cluster) and isinstance(self.pipeline, NumpyPipeline):
            raise ValueError(NUMPY_IN_CLUSTER)
        self.model: keras.Model | None = None
        self.records: list[Epoch] = []
        self._last_epoch_seconds = float("nan")
        self.initial_loss = math.nan  # the validation loss before training, measured in start()
        self._turn: int | None = None
        self._hardware = hardware.sampler(device.kind == "gpu")
        self._callbacks: keras.callbacks.CallbackList | None = None

    def build(self) -> keras.Model:
        keras.utils.set_random_seed(self.workload.seed)
        variant = self.variant
        with precision_policy(variant.precision), self.device.strategy.scope():
            arguments = models.arguments(self.workload.model, self.workload.model_args, self.dataset.classes)
            try:
                model = self.workload.model(input_shape=self.input_shape, **arguments)
            except Exception as error:  # the user's code: one line naming it; the traceback is chained
                name = getattr(self.workload.model, "__qualname__", repr(self.workload.model))
                raise ModelFunctionError(
                    f"the model function {name}(input_shape={self.input_shape}, "
                    f"{', '.join(f'{k}={v!r}' for k, v in arguments.items())}) raised {type(error).__name__}: "
                    f"{error}") from error
            # Under mixed_float16, compile wraps the optimizer in a LossScaleOptimizer (dynamic
            # loss scaling), as the Keras mixed-precision guide requires for float16.
            model.compile(optimizer=make_optimizer(self.workload.optimizer), loss=self.workload.loss,
                          metrics=compiled_metrics(self.workload.metric), jit_compile=variant.jit_compile,
                          steps_per_execution=variant.steps_per_execution)
        if variant.jit_compile and not model.jit_compile:
            raise ValueError(f"XLA was asked for, but Keras turned it off for {model.name} (a layer does not "
                             "support XLA, or op determinism is enabled); drop jit_compile from the variant")
        self.loop.built(self, model)
        return model

    @property
    def input_shape(self) -> Any:
        """The workload's input shape, or each sample's shape in the data: a tuple, or a dict (or
        tuple) of tuples for a model with several inputs."""
        return tuple(self.workload.input_shape) if self.workload.input_shape else sample_shape(self.splits.x_train)

    def prepare_inputs(self) -> None:
        # Converted once, on the host; each epoch's pipeline only gathers batches from them.
        with tf.device("/cpu:0"):
            self._x_train = tf.nest.map_structure(tf.constant, self.splits.x_train)
            self._y_train = tf.nest.map_structure(tf.constant, self.splits.y_train)
        batch = self.workload.batch_size
        self._val_data = self._eval_dataset(self.splits.x_val, self.splits.y_val, batch)
        self._test_data = self._eval_dataset(self.splits.x_test, self.splits.y_test, batch)
        self._val_data, self._test_data = (self.loop.evaluation_data(self.device.strategy, data)
                                           for data in (self._val_data, self._test_data))

    @property
    def validation_data(self) -> tf.data.Dataset:
        """The validation set as the runner evaluates it between rounds (after prepare_inputs)."""
        return self._val_data

    def evaluate(self, data) -> dict[str, float]:
        """Loss and metric on `data` (validation or test), untimed."""
        return self.loop.evaluate(self.model, data)

    @staticmethod
    def _eval_dataset(x: Arrays, y: Arrays, batch: int) -> tf.data.Dataset:
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
        count, batch = rows(self.splits.y_train), self.workload.batch_size
        order = np.random.default_rng([self.workload.seed, epoch]).permutation(count)
        full = count // batch * batch
        # Batches of indices (not of samples) so the pipeline gathers whole batches at once.
        indices = tf.data.Dataset.from_tensor_slices(order[:full].reshape(-1, batch))
        if self.steps_per_epoch * batch > full:
            indices = indices.concatenate(tf.data.Dataset.from_tensors(order[full:]))
        x, y = self._x_train, self._y_train
        return indices.map(
            lambda index: tf.nest.map_structure(lambda array: tf.gather(array, index), (x, y)),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).prefetch(tf.data.AUTOTUNE)

    @property
    def samples_per_epoch(self) -> int:
        return min(self.steps_per_epoch * self.workload.batch_size, rows(self.splits.y_train))

    @property
    def steps_per_epoch(self) -> int:
        count, batch = rows(self.splits.y_train), self.workload.batch_size
        return count // batch if self.drop_remainder else -(-count // batch)

    def first_epoch(self, data: tf.distribute.DistributedDataset | None) -> None:
        """Epoch 1, tracing included, timed on its own: through Keras' own fit (it builds the
        model under the strategy), or a cluster's own loop. `data`: the pipeline's first epoch
        (None for the numpy pipeline: fit on the split's arrays)."""
        self._last_epoch_seconds = self.loop.first_epoch(self, data)

    def callbacks(self) -> keras.callbacks.CallbackList:
        """The hooks fit() calls around each batch, with the History it always adds."""
        callbacks = keras.callbacks.CallbackList(add_history=True, model=self.model)
        callbacks.on_train_begin()
        return callbacks

    def sync(self) -> None:
        """Wait for this process's devices, then, in a cluster, for every worker (a barrier)."""
        self.loop.sync()

    def open_rounds(self) -> None:
        """Before the rounds, untimed: one iterator over epochs 2..N, as fit() keeps one over a
        repeated dataset. Opening a distributed iterator costs ~80 ms on a 2-core CPU (more
        than a small epoch), so it is not opened per round; between rounds it prefetches the
        next epoch, as fit's does during validation."""
        self.drop_iterators()  # a cluster's epoch 1 ran on an iterator of its own
        self.pipeline.open_rounds()

    def before_round(self) -> None:
        """Untimed, before each round: reset the metrics (as fit does before each epoch); with
        k > 1 steps per execution, open this epoch's own iterator (a call of the train function
        stops at its end, as in fit); then wait for the turn in an interleaved run."""
        self.model.reset_metrics()
        self.pipeline.before_round(len(self.records))
        self.take_turn()

    def take_turn(self) -> None:
        """Before a timed epoch, untimed: in an interleaved run, wait until it is this run's turn;
        then read the hardware's counters (energy, throttled time), the last thing before it."""
        self._turn = turns.take()
        self._hardware.start()

    def drop_iterators(self) -> None:
        """Untimed: this runner's spent iterators go, deleted off this thread (`release`)."""
        self.pipeline.drop()

    def train_epoch(self) -> None:
        """The timed round: what one epoch of a multi-epoch fit() runs, then a device sync (and,
        in a cluster, the barrier that waits for every worker)."""
        start = time.perf_counter()
        self.epoch_loop(len(self.records))
        self.sync()
        self._last_epoch_seconds = time.perf_counter() - start

    def epoch_loop(self, epoch: int) -> None:
        """One epoch of fit()'s loop: the train function per call between the batch hooks."""
        model, callbacks = self.model, self._callbacks
        callbacks.on_epoch_begin(epoch)
        with self.pipeline.guard():  # fit()'s guard around an epoch (for arrays: end of data ends it)
            for first_step, last_step, iterator in self.pipeline.calls():
                callbacks.on_train_batch_begin(first_step)
                logs = model.train_function(iterator)
                callbacks.on_train_batch_end(last_step, logs)

    def record_epoch(self, *_unused: Any) -> None:
        """Between rounds: read the epoch's training metrics (ending the epoch for the callbacks)
        and evaluate on the validation set; raise Diverged when the training loss is no longer
        finite (training stops there)."""
        hardware_state = self._hardware.stop()  # the first thing after the epoch
        training = self.model.get_metrics_result()
        self._callbacks.on_epoch_end(len(self.records), training)
        loss = float(training["loss"])
        validation = test = {"loss": math.nan, self.metric: math.nan}
        if math.isfinite(loss):
            validation = self.evaluate(self._val_data)
            if self.track_test:  # the same evaluation when the test set is the validation set
                test = validation if self.workload.validation == "test" else self.evaluate(self._test_data)
        self.records.append(
            Epoch(
                seconds=self._last_epoch_seconds,
                loss=loss,
                metric=float(training[self.metric]),
                val_loss=float(validation["loss"]),
                val_metric=float(validation[self.metric]),
                test_loss=float(test["loss"]),
                test_metric=float(test[self.metric]),
                turn=self._turn,
                hardware=hardware_state,
            )
        )
        if self.on_epoch is not None:
            self.on_epoch(self.records[-1])
        exploded = self.exploded(loss)
        if exploded is not None:
            raise Diverged(
                f"diverged at epoch {len(self.records)}: loss {loss:.4g}{exploded} ({self.workload.name}, batch size "
                f"{self.workload.batch_size}, {describe_optimizer(self.model.optimizer)}, {self.device.kind})")

    def exploded(self, loss: float) -> str | None:
        """None while training is sane; else what to add to the loss to say how it left it
        ('' when not finite; past the workload's multiple of its loss before training)."""
        if not math.isfinite(loss):
            return ""
        limit, before = self.workload.loss_explosion, self.initial_loss
        if not (math.isfinite(before) and before > 0 and loss > limit * before):
            return None
        return (f" ({loss / before:.2g}x its loss before training, {before:.4g}; "
                f"the limit is Workload.loss_explosion = {limit:g}x)")

    def start(self) -> None:
        """Untimed: the inputs, the model, epoch 1 (tracing included, recorded on its own)."""
        self.prepare_inputs()
        self.model = self.build()
        self.take_turn()
        # The loss before any training, on the validation set (in this session's turn, outside
        # every clock): what an exploding loss is measured against (Workload.loss_explosion).
        self.initial_loss = float(self.evaluate(self._val_data)["loss"])
        self.model.reset_metrics()  # epoch 1's training metrics start from zero, as fit's do
        self.first_epoch(self.pipeline.first_epoch_data())
        self.record_epoch()
        self.open_rounds()

    def round(self) -> None:
        """One timed epoch by the runner's own clock alone (the paired reference's)."""
        self.before_round()
        self.train_epoch()
        self.record_epoch()

    def run(self, benchmark: Benchmark | None = None, reference: EpochRunner | None = None) -> Record:
        """Train the whole schedule; epochs 2..N are `benchmark`'s rounds when it is enabled.

        `reference` (a variant's float32/XLA-off/1-step/tf.data twin): it trains in this process
        too, taking turns epoch by epoch, untimed for pytest-benchmark and timed by its own
        runner's clock, first in even rounds and second in odd ones; its epoch times go into
        this record (`Record.reference`), so a speed-up comes from paired epochs."""
        host_reset = memory.reset(self.device.strategy)
        rounds = self.schedule.epochs - 1

        def before() -> None:
            if reference is not None and (len(self.records) - 1) % 2 == 0:
                reference.round()
            self.before_round()

        def after(*_unused: Any) -> None:
            self.record_epoch()
            if reference is not None and (len(self.records) - 2) % 2 == 1:
                reference.round()

        try:
            self.start()
            if reference is not None:
                reference.start()
            if benchmark is not None and benchmark.enabled:
                benchmark.pedantic(self.train_epoch, setup=before, teardown=after,
                                   rounds=rounds, warmup_rounds=0, iterations=1)
            else:
                for _ in range(rounds):
                    before()
                    self.train_epoch()
                    after()
        except Diverged as diverged:
            self.drop_iterators()
            if benchmark is not None:
                # pytest-benchmark drops a benchmark whose target raised; its rounds up to the
                # divergence measured training all the same, and the record says what happened.
                benchmark.has_error = False
            diverged.record = self.record(host_reset, status="diverged", failure=str(diverged))
            raise
        self.drop_iterators()
        paired = {} if reference is None else {"reference": reference.as_reference()}
        last = self.records[-1]
        if self.track_test:  # the last epoch's evaluation is the final one
            test = {"loss": last.test_loss, self.metric: last.test_metric}
        else:
            test = self.evaluate(self._test_data)
        record = self.record(host_reset, test_loss=float(test["loss"]), test_metric=float(test[self.metric]),
                             **paired)
        if self.explain is not None:  # after every figure of the record: the steps it adds train on
            record.op_profile = self.profile_steps(self.explain)
        return record

    def profile_steps(self, explain: Explain) -> dict[str, Any]:
        """Untimed, after the schedule: `explain.steps` more steps under TensorFlow's profiler, in
        chunks of opprofile.CHUNK calls, each chunk in this session's turn after one unprofiled
        warm call, on a fresh epoch of the same pipeline. The summary (opprofile.summarize), or
        {"error": ...} when the profiler could not run: the test's record stands either way."""
        optimizer = self.model.optimizer
        scopes = [opt.name for opt in (optimizer, getattr(optimizer, "inner_optimizer", None)) if opt is not None]
        per_call = self.variant.steps_per_execution
        calls_left = -(-explain.steps // per_call)
        explain.directory.mkdir(parents=True, exist_ok=True)
        spaces, step, chunks = [], 0, 0
        try:
            while calls_left > 0:
                # Its own folder: the profiler names a run by the second it started, and chunks
                # of small steps start within one.
                chunks += 1
                chunk = explain.directory / f"chunk-{chunks}"
                turns.take()
                self.pipeline.open_rounds()
                self.pipeline.before_round(self.schedule.epochs)
                calls = self.pipeline.calls()
                with self.pipeline.guard():
                    self.model.train_function(next(calls)[2])  # warm: the pipeline's first batch
                    self.sync()
                    tf.profiler.experimental.start(str(chunk))
                    try:
                        for _, (_, _, iterator) in zip(range(min(opprofile.CHUNK, calls_left)), calls, strict=False):
                            with tf.profiler.experimental.Trace(opprofile.STEP_EVENT, step_num=step, _r=1):
                                self.model.train_function(iterator)
                            step, calls_left = step + 1, calls_left - 1
                        self.sync()
                    finally:
                        tf.profiler.experimental.stop()
                self.pipeline.drop()
                spaces += [opprofile.read_space(path) for path in sorted(chunk.rglob("*.xplane.pb"))]
                if not step:
                    raise opprofile.ProfileError("an epoch of this pipeline has too few steps to profile")
            summary = opprofile.summarize(spaces, scopes, per_call)
        except (opprofile.ProfileError, tf.errors.OpError, StopIteration) as error:
            self.pipeline.drop()
            return {"error": f"no profile: {type(error).__name__}: {error}".strip(),
                    "directory": str(explain.directory)}
        return {**summary, "directory": str(explain.directory)}

    def as_reference(self) -> dict[str, Any]:
        """What a paired variant's record keeps of this reference: its variant and epochs."""
        self.drop_iterators()
        return {"variant": self.variant.as_dict(), "epoch_seconds": [e.seconds for e in self.records],
                "turns": [e.turn for e in self.records], "loss": self.records[-1].loss}

    def record(self, host_reset: bool, **outcome: Any) -> Record:
        return Record(
            measurement=self.measurement(),
            epochs=self.records,
            params=self.model.count_params(),
            flops_per_sample=(flops := training_flops(self.model)).per_sample,
            flops_unknown=flops.unknown,
            device_description=self.device.description,
            memory=memory.peaks(self.device.strategy, host_reset),
            interleave=ring.describe() if (ring := turns.current()) is not None else None,
            **outcome,
        )

    def measurement(self) -> Measurement:
        """What this run measures: the workload as trained (the optimizer's settings as Keras
        resolved them), the schedule with the sample counts it really had, device and batch."""
        workload, schedule, sizes = self.workload, self.schedule, self.splits.sizes
        # Under mixed_float16 the inner optimizer is the workload's (loss scaling is the variant's).
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        # Its settings as Keras resolved them; not its name, which Keras numbers per process (adam_1).
        settings = {key: value for key, value in optimizer.get_config().items() if key != "name"}
        described = {
            "name": workload.name,
            "dataset": self.dataset.identity or self.dataset.name,
            "model": workload.model.__name__,
            "model_args": dict(workload.model_args),
            "input_shape": plain_shape(self.input_shape),
            "optimizer": {"name": type(optimizer).__name__, "config": settings},
            "loss": workload.loss,
            "metric": workload.metric_name,
            "goal": workload.goal,
            "validation": workload.validation,
            "validation_at": workload.validation_at,
            "seed": workload.seed,
        }
        if self.dataset.images:  # only registered images are scaled (split)
            described["pixel_scale"] = workload.pixel_scale
        # One JSON form (tuples as lists, numpy scalars as numbers), in memory as in the file.
        described = json.loads(json.dumps(described, default=_plain))
        return Measurement(
            workload=described,
            schedule={"epochs": schedule.epochs, "train_samples": sizes["train"],
                      "validation_samples": sizes["validation"], "test_samples": sizes["test"],
                      "samples_per_epoch": self.samples_per_epoch, "bound": schedule.bound},
            profile=self.profile,
            device=self.device.kind,
            replicas=self.device.replicas,
            global_batch=workload.batch_size,
            per_replica_batch=workload.batch_size // self.device.replicas,
            variant=self.variant.as_dict(),
            workers=self.device.workers,
            cluster=dict(self.device.cluster or {}),
            threads=hardware.pool_threads(tf)["intra_op"],
        )


def compiled_metrics(metric: Any) -> list[Any] | dict[str, list[Any]]:
    """The workload's metric as Model.compile takes it: a list of one, or {output: [metric]} for one
    output of a model with several."""
    output, metric = output_metric(metric)
    return [compiled_metric(metric)] if output is None else {output: [compiled_metric(metric)]}


def compiled_metric(metric: Any) -> Any:
    """The workload's metric for Model.compile: a Metric object is copied from its config, since
    its state belongs to one model (a variant's twin compiles its own); a name or function as is."""
    if isinstance(metric, keras.metrics.Metric):
        return type(metric).from_config(metric.get_config())
    return metric


def _plain(value: Any) -> Any:
    """JSON for what json cannot write itself (numpy scalars; anything else by its repr)."""
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


NUMPY_IN_CLUSTER = ("the numpy pipeline trains through Keras' fit, which cannot run under "
                    "MultiWorkerMirroredStrategy (keras-team/keras#20585); use pipeline=tf.data in a cluster")


class Pipeline:
    """Where a round's batches come from, chosen once per runner (`pipeline_for`): epoch 1's data,
    the iterators opened between rounds (untimed) and the calls of the train function that make
    one epoch (timed)."""

    def __init__(self, runner: EpochRunner):
        self.runner = runner
        self.iterator = None  # the distributed iterator the calls read from

    def first_epoch_data(self) -> tf.distribute.DistributedDataset | None:
        return self.runner.epoch_data(0)

    def fit_first_epoch(self, model: keras.Model, data: tf.distribute.DistributedDataset | None) -> None:
        model.fit(data, epochs=1, shuffle=False, verbose=0)

    def open_rounds(self) -> None:
        """Before the rounds, untimed."""

    def before_round(self, epoch: int) -> None:
        """Before round `epoch` (0-based), untimed."""

    def calls(self):
        """One epoch's calls of the train function: (first step, last step, iterator)."""
        steps, per_call = self.runner.steps_per_epoch, self.runner.variant.steps_per_execution
        for step in range(0, steps, per_call):
            yield step, min(step + per_call, steps) - 1, self.iterator

    def guard(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def drop(self) -> None:
        """Untimed: the spent iterators go, deleted off this thread (`release`)."""
        spent = [self.iterator]  # its only reference
        self.iterator = None
        release(spent)


class TFDataPipeline(Pipeline):
    """tf.data, one step per call: one iterator over epochs 2..N, opened before the rounds, as fit()
    keeps one over a repeated dataset."""

    def open_rounds(self) -> None:
        self.iterator = iter(self.runner.epoch_data(1, self.runner.schedule.epochs - 1))


class TFDataPerEpochPipeline(Pipeline):
    """tf.data, k > 1 steps per call: each epoch its own iterator, opened before its round, so that
    the epoch's last call stops at its end, as in fit()."""

    def before_round(self, epoch: int) -> None:
        self.drop()  # the last epoch's, spent
        self.iterator = iter(self.runner.epoch_data(epoch))


class NumpyPipeline(Pipeline):
    """The split's arrays through Keras' own adapter: epoch 1 is fit(x, y); each round runs fit's
    epoch loop over the TFEpochIterator that fit builds (shuffling, batching and distributing in
    Keras' code, inside the round, as in a notebook's fit)."""

    def __init__(self, runner: EpochRunner):
        super().__init__(runner)
        self.epochs = None  # Keras' TFEpochIterator; each enumeration is one epoch

    def first_epoch_data(self) -> None:
        return None

    def fit_first_epoch(self, model: keras.Model, data: None) -> None:
        splits = self.runner.splits
        model.fit(splits.x_train, splits.y_train, batch_size=self.runner.workload.batch_size, epochs=1,
                  shuffle=True, verbose=0)

    def open_rounds(self) -> None:
        self.epochs = numpy_epoch_iterator(self.runner.model, self.runner.splits.x_train, self.runner.splits.y_train,
                                           self.runner.workload.batch_size)
        self.epochs.reset()

    def calls(self):
        yield from self.epochs

    def guard(self) -> contextlib.AbstractContextManager:
        return self.epochs.catch_stop_iteration()

    def drop(self) -> None:
        spent = [self.iterator, self.epochs]  # their only references
        self.iterator = self.epochs = None
        release(spent)


def pipeline_for(runner: EpochRunner) -> Pipeline:
    """The workload's variant's pipeline: NumPy, or tf.data with one or k steps per call."""
    if runner.variant.pipeline == "numpy":
        return NumpyPipeline(runner)
    return TFDataPipeline(runner) if runner.variant.steps_per_execution == 1 else TFDataPerEpochPipeline(runner)


class Loop(Protocol):
    """How steps run: in one process through Keras' fit and evaluate, or as a cluster's worker."""

    def built(self, runner: EpochRunner, model: keras.Model) -> None: ...

    def evaluation_data(self, strategy: tf.distribute.Strategy, data: tf.data.Dataset): ...

    def evaluate(self, model: keras.Model, data) -> dict[str, float]: ...

    def first_epoch(self, runner: EpochRunner, data) -> float: ...

    def sync(self) -> None: ...


class Evaluation:
    """What both loops share: the model's metrics and optimizer built before anything runs (what
    fit or evaluate would build from the first batch), and evaluation as one traced call of the
    model's own test_step over the whole distributed set (`step_function`), its metrics read from
    the model's metric variables (summed over every replica). Keras' evaluate gives the same
    figures, but opens the set's iterator twice per call (once to look at a batch for its build
    check) with its callbacks around it: 0.25 s for 2,000 MLP samples, against 0.06 s (about
    10 ms of it compute) on a 2-core CPU, and a quarter of an A/B round's wall time."""

    def built(self, runner: EpochRunner, model: keras.Model) -> None:
        with runner.device.strategy.scope():
            model._symbolic_build(data_batch=tf.nest.map_structure(lambda array: array[:1],
                                                                   (runner.splits.x_train, runner.splits.y_train)))
        self._evaluate_all = step_function(model, model.test_step, whole_dataset=True)

    def evaluation_data(self, strategy: tf.distribute.Strategy, data: tf.data.Dataset):
        return strategy.experimental_distribute_dataset(data)

    def evaluate(self, model: keras.Model, data) -> dict[str, float]:
        model.reset_metrics()
        with warnings.catch_warnings():
            # Tracing a loop over a distributed dataset reads the dataset's options in graph mode,
            # and TensorFlow warns that they may not be its own; the evaluation sets none.
            warnings.filterwarnings("ignore", message="To make it possible to preserve tf.data options",
                                    category=UserWarning)
            self._evaluate_all(data)
        return {key: float(value) for key, value in model.get_metrics_result().items()}


class SingleProcess(Evaluation):
    """One process: Keras' own fit (epoch 1) and train function."""

    def first_epoch(self, runner: EpochRunner, data) -> float:
        """Epoch 1 through fit (it traces the train step); its seconds."""
        start = time.perf_counter()
        runner.pipeline.fit_first_epoch(runner.model, data)
        devices.synchronize()
        seconds = time.perf_counter() - start
        runner._callbacks = runner.callbacks()
        return seconds

    def sync(self) -> None:
        devices.synchronize()


class Cluster(Evaluation):
    """A worker of a MultiWorkerMirroredStrategy cluster: Keras' fit, evaluate and train function
    cannot run there (keras-team/keras#20585), so the model's own train_step runs through
    strategy.run (`step_function`), epoch 1 included, and a round ends at a barrier."""

    def built(self, runner: EpochRunner, model: keras.Model) -> None:
        super().built(runner, model)
        model.train_function = step_function(model, model.train_step)
        self._barrier = barrier_function(runner.device.strategy)

    def first_epoch(self, runner: EpochRunner, data) -> float:
        """Epoch 1 by the rounds' own loop (tracing included); its seconds."""
        runner._callbacks = runner.callbacks()
        runner.pipeline.iterator = iter(data)
        start = time.perf_counter()
        runner.epoch_loop(0)
        self.sync()
        return time.perf_counter() - start

    def sync(self) -> None:
        devices.synchronize()
        self._barrier()


def step_function(model: keras.Model, step: Callable, whole_dataset: bool = False) -> Callable:
    """Keras' train (or test) function: `step` (the model's own train_step or test_step) through
    strategy.run, `steps_per_execution` steps per call (fewer at the end of the data), without
    Keras' host-side reduction of the step's logs, which fails across workers
    (keras-team/keras#20585). `whole_dataset`: one call runs every batch left (evaluation)."""
    strategy, per_call = model.distribute_strategy, model.steps_per_execution

    def one_step(data):
        strategy.run(step, args=(data,))

    if model.jit_compile:  # as Keras compiles its step function
        one_step = tf.function(one_step, jit_compile=True, reduce_retracing=True)

    @tf.function
    def function(iterator):
        if whole_dataset:
            for data in iterator:
                one_step(data)
        elif per_call == 1:
            one_step(iterator.get_next())
        else:
            for _ in tf.range(per_call):
                data = iterator.get_next_as_optional()
                if not data.has_value():
                    break
                one_step(data.get_value())

    return function


def barrier_function(strategy: tf.distribute.Strategy) -> Callable[[], None]:
    """Returns when every replica of every worker has called it: a one-element all-reduce."""

    @tf.function
    def reduce():
        return strategy.reduce("SUM", strategy.run(lambda: tf.ones(())), axis=None)

    return lambda: reduce().numpy()


@contextlib.contextmanager
def precision_policy(precision: str):
    """Keras' global dtype policy set to `precision` inside, restored after (even on error)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def numpy_epoch_iterator(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int):
    """The epoch iterator `fit(x, y, batch_size, shuffle=True)` builds for NumPy arrays (Keras'
    TensorFlow trainer; private API, so a clear error if a Keras release moves it)."""
    try:
        from keras.src.backend.tensorflow.trainer import TFEpochIterator
    except ImportError as error:  # pragma: no cover - depends on the Keras release
        raise RuntimeError(f"the numpy pipeline needs Keras 3's TFEpochIterator ({error}); "
                           "use the tf.data pipeline with this Keras") from error
    return TFEpochIterator(x=x, y=y, batch_size=batch_size, shuffle=True,
                           distribute_strategy=model.distribute_strategy,
                           steps_per_execution=model.steps_per_execution)


_releasing: list[threading.Thread] = []


def release(spent: list) -> None:
    """Deletes the tf.data iterators in `spent` (their only references) in a background thread.
    Deleting an iterator joins its autotuning thread, which in TF 2.21 notices only at the end
    of its optimization period (which doubles up to a minute): a spent iterator's deletion held
    the session 9-56 s between rounds or between tests on a 2-core CPU (docs/measurement.md).
    The background thread waits instead, without the GIL, so no training waits for it; the
    process waits for the last ones before it exits."""
    spent[:] = [iterator for iterator in spent if iterator is not None]
    if not spent:
        return
    thread = threading.Thread(target=spent.clear, name="fitbench-release-iterators", daemon=True)
    _releasing[:] = [alive for alive in _releasing if alive.is_alive()] + [thread]
    thread.start()


@atexit.register
def _wait_for_released() -> None:
    for thread in list(_releasing):
        thread.join()


def train(workload: Workload, profile: str, device: Device, dataset: Dataset,
          benchmark: Benchmark | None = None, on_epoch: Callable[[Epoch], None] | None = None,
          track_test: bool = False, reference: Workload | None = None, explain: Explain | None = None) -> Record:
    """Train `workload` under `profile` on `device`; epochs 2..N are `benchmark`'s rounds when
    given. The record goes to the benchmark's extra_info (`Record.to_json`) once the test has
    checked its target (fitbench.plugin.hooks). `track_test`: evaluate the test set every epoch.
    `reference`: the same workload under the reference variant, trained in turns with it
    (`EpochRunner.run`), for a paired speed-up. `explain`: profile steps after the schedule
    (`EpochRunner.profile_steps`)."""
    # The twin's epochs go to `on_epoch.twin` when it has one (live progress: trainings done).
    twin = None if reference is None else EpochRunner(reference, profile, device, dataset,
                                                      getattr(on_epoch, "twin", None))
    return EpochRunner(workload, profile, device, dataset, on_epoch, track_test, explain).run(benchmark, twin)
