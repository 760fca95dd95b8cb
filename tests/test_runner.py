"""The per-epoch runner on a tiny model: rounds, what a round contains, the disabled path."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from fitbench import Variant
from fitbench.core.record import Record
from fitbench.measure import devices, runner
from fitbench.measure.runner import EpochRunner
from fitbench.measure.workloads import Schedule
from fitbench.processes import turns
from tests.helpers import TINY, RecordingBenchmark


def test_rounds_are_epochs_after_the_first(tiny_dataset, cpu):
    benchmark = RecordingBenchmark()
    result = runner.train(TINY, "default", cpu, tiny_dataset, benchmark)
    assert benchmark.pedantic_calls == 1
    assert benchmark.rounds == TINY.schedules["default"].epochs - 1
    assert len(result.epochs) == 4 and len(result.to_json()["epochs"]) == 4
    assert result.to_json()["derived"]["first_epoch_seconds"] == result.epochs[0].seconds


def test_a_timed_round_holds_training_and_nothing_else(tiny_dataset, cpu, monkeypatch):
    benchmark = RecordingBenchmark()
    log: list[tuple[str, bool]] = []

    def spy(name, method):
        def wrapper(*args, **kwargs):
            log.append((name, benchmark.in_round))
            return method(*args, **kwargs)
        return wrapper

    for name in ("fit", "get_metrics_result", "reset_metrics"):
        monkeypatch.setattr(keras.Model, name, spy(name, getattr(keras.Model, name)))
    monkeypatch.setattr(keras.Model, "evaluate", spy("keras evaluate", keras.Model.evaluate))
    for name in ("epoch_data", "open_rounds", "build", "evaluate"):
        monkeypatch.setattr(EpochRunner, name, spy(name, getattr(EpochRunner, name)))
    monkeypatch.setattr(devices, "synchronize", spy("synchronize", devices.synchronize))
    original_first_epoch = EpochRunner.first_epoch

    def first_epoch_then_spy_steps(self, data):
        original_first_epoch(self, data)
        self.model.train_function = spy("train_step", self.model.train_function)

    monkeypatch.setattr(EpochRunner, "first_epoch", first_epoch_then_spy_steps)
    runner.train(TINY, "default", cpu, tiny_dataset, benchmark)

    steps = 11  # 1,050 samples in batches of 100, the partial batch kept
    inside = [name for name, in_round in log if in_round]
    one_epoch = ["train_step"] * steps + ["synchronize"]
    assert inside == one_epoch * 3
    # Around each round, untimed: the metrics reset right before it and read right after it.
    for index, (_name, in_round) in enumerate(log):
        if in_round and not log[index - 1][1]:  # a round's first call
            assert "reset_metrics" in [n for n, _ in log[max(0, index - 3):index]]
        if in_round and not log[index + 1][1]:  # a round's last call
            assert log[index + 1][0] == "get_metrics_result"
    outside = [name for name, in_round in log if not in_round]
    assert outside.count("fit") == 1  # epoch 1 only, recorded as first_epoch_seconds
    # The loss before training (the divergence guard's reference), validation after every
    # epoch, test at the end.
    assert outside.count("evaluate") == 1 + 4 + 1  # the runner's own
    assert "keras evaluate" not in outside  # one traced call over the set, not Keras' evaluate
    # Epoch 1's data, then one iterator over epochs 2..N opened before the rounds.
    assert outside.count("epoch_data") == 2 and outside.count("open_rounds") == 1


def test_the_runners_evaluation_gives_keras_evaluates_figures(tiny_dataset, cpu, recwarn):
    """Its own traced loop over the whole set (`runner.Evaluation`) against Keras' evaluate, on the
    trained model and the same data (a partial last batch included); tracing it warns nothing."""
    epoch_runner = EpochRunner(TINY, "default", cpu, tiny_dataset)
    epoch_runner.run()
    assert not [w for w in recwarn if "tf.data options" in str(w.message)]
    splits = epoch_runner.splits
    data = cpu.strategy.experimental_distribute_dataset(  # 950 samples: 9 batches of 100 and one of 50
        EpochRunner._eval_dataset(splits.x_val[:950], splits.y_val[:950], TINY.batch_size))
    ours = epoch_runner.evaluate(data)
    keras_figures = epoch_runner.model.evaluate(data, verbose=0, return_dict=True)
    assert ours.keys() == keras_figures.keys()
    for name, value in keras_figures.items():
        assert ours[name] == pytest.approx(value, rel=1e-6), name


class CountingRing:
    """Stands in for fitbench.processes.turns.Ring: hands out turns 10, 11, ... and checks when."""

    def __init__(self, benchmark: RecordingBenchmark):
        self.benchmark, self.turn = benchmark, 9

    def take(self) -> int:
        assert not self.benchmark.in_round, "waiting for a turn inside a timed round"
        self.turn += 1
        return self.turn

    def describe(self) -> dict:
        return {"ring": "test", "index": 0, "size": 2}


def test_an_interleaved_run_takes_a_turn_before_each_epoch_untimed(tiny_dataset, cpu, monkeypatch):
    benchmark = RecordingBenchmark()
    monkeypatch.setattr(turns, "_current", CountingRing(benchmark))
    result = runner.train(TINY, "default", cpu, tiny_dataset, benchmark)
    assert [e.turn for e in result.epochs] == [10, 11, 12, 13]  # epoch 1 (through fit) included
    assert [e["turn"] for e in result.to_json()["epochs"]] == [10, 11, 12, 13]
    assert result.to_json()["interleave"] == {"ring": "test", "index": 0, "size": 2}
    monkeypatch.setattr(turns, "_current", None)
    plain = runner.train(TINY, "default", cpu, tiny_dataset, RecordingBenchmark())
    assert plain.interleave is None and [e.turn for e in plain.epochs] == [None] * 4


def test_no_retracing_after_the_first_epoch(tiny_dataset, cpu, monkeypatch):
    traces = []
    original = keras.Model.train_step

    def counting_train_step(self, data):
        traces.append(1)  # Python runs a train_step body only while tracing
        return original(self, data)

    monkeypatch.setattr(keras.Model, "train_step", counting_train_step)
    epoch_runner = EpochRunner(TINY, "default", cpu, tiny_dataset)
    result = epoch_runner.run(RecordingBenchmark())
    traced_in_epoch_one = len(traces)
    assert traced_in_epoch_one >= 1 and len(result.epochs) == 4
    # A later retrace would add calls; compare with a run one epoch longer.
    longer = EpochRunner(TINY.but(schedules={"default": Schedule(epochs=5, train_samples=1050)}),
                         "default", cpu, tiny_dataset)
    traces.clear()
    longer.run(RecordingBenchmark())
    assert len(traces) == traced_in_epoch_one


def test_a_twins_epochs_reach_the_progress_between_the_variants(tiny_dataset, cpu):
    # The live time left counts a twin's trainings as they end (fitbench.present.progress).
    events = []

    def on_epoch(epoch):
        events.append("variant")

    on_epoch.twin = lambda epoch: events.append("twin")
    runner.train(TINY.but(variant=Variant(steps_per_execution=2)), "default", cpu, tiny_dataset,
                 RecordingBenchmark(), on_epoch, reference=TINY)
    # Epoch 1 each (the twin starts after the variant), then turns in alternating order.
    assert events == ["variant", "twin", "twin", "variant", "variant", "twin", "twin", "variant"]


def test_spent_iterators_are_deleted_off_the_training_thread(tiny_dataset, cpu):
    # Deleting a tf.data iterator waits for its autotuning thread (up to a minute in TF 2.21).
    deleted_in = []

    class Spent:
        def __del__(self):
            deleted_in.append(threading.current_thread().name)

    epoch_runner = EpochRunner(TINY.but(variant=Variant(pipeline="numpy")), "default", cpu, tiny_dataset)
    epoch_runner.pipeline.iterator, epoch_runner.pipeline.epochs = Spent(), Spent()
    epoch_runner.drop_iterators()
    for thread in list(runner._releasing):
        thread.join()
    assert epoch_runner.pipeline.iterator is None and epoch_runner.pipeline.epochs is None
    assert deleted_in == ["fitbench-release-iterators"] * 2


def test_disabled_benchmark_trains_the_whole_schedule(tiny_dataset, cpu):
    benchmark = RecordingBenchmark(enabled=False)
    result = runner.train(TINY, "default", cpu, tiny_dataset, benchmark)
    assert benchmark.pedantic_calls == 0
    assert len(result.epochs) == 4
    assert result.test_metric > 0.5  # synthetic classes are easy; an untrained model gets ~0.1


def test_training_learns_and_records_every_epoch(tiny_dataset, cpu):
    result = runner.train(TINY, "default", cpu, tiny_dataset)
    assert len(result.epochs) == 4
    assert result.epochs[-1].loss < result.epochs[0].loss
    assert all(0 < e.val_metric <= 1 and e.seconds > 0 for e in result.epochs)
    assert result.params == 784 * 16 + 16 + 16 * 10 + 10
    measurement = result.measurement
    assert measurement.schedule["train_samples"] == 1050 and measurement.schedule["test_samples"] == 500
    assert measurement.global_batch == 100 and measurement.replicas == 1 and measurement.per_replica_batch == 100
    assert measurement.workload["optimizer"]["name"] == "Adam"
    assert measurement.workload["optimizer"]["config"]["learning_rate"] == pytest.approx(0.001)
    assert result.samples_per_second == pytest.approx(1050 / result.median_epoch_seconds)


def test_the_record_survives_its_json_and_names_what_differs(tiny_dataset, cpu):
    import json

    result = runner.train(TINY, "default", cpu, tiny_dataset)
    text = json.dumps(result.to_json(), allow_nan=False)  # strict JSON
    back = Record.from_json(json.loads(text), "test_tiny[cpu]", "tiny", {"device": "cpu"})
    assert back.measurement == result.measurement and back.epoch_seconds == result.epoch_seconds
    assert back.experiment == "test_tiny" and back.case == ""
    # Two trainings of one workload in one process measure the same thing (optimizer names aside).
    again = runner.train(TINY, "default", cpu, tiny_dataset)
    assert again.measurement.differences(result.measurement) == []
    other = runner.train(TINY.but(batch_size=50), "default", cpu, tiny_dataset)
    assert "global_batch: 50 != 100" in other.measurement.differences(result.measurement)


def test_same_seed_same_result(tiny_dataset, cpu):
    first = runner.train(TINY, "default", cpu, tiny_dataset)
    second = runner.train(TINY, "default", cpu, tiny_dataset)
    assert [e.loss for e in first.epochs] == pytest.approx([e.loss for e in second.epochs], rel=1e-4)


def test_epoch_order_is_a_fresh_permutation_each_epoch(tiny_dataset, cpu):
    epoch_runner = EpochRunner(TINY, "default", cpu, tiny_dataset)
    epoch_runner.prepare_inputs()
    first = [batch[1].numpy().tolist() for batch in epoch_runner.epoch_data(0)]
    second = [batch[1].numpy().tolist() for batch in epoch_runner.epoch_data(1)]
    both = [batch[1].numpy().tolist() for batch in epoch_runner.epoch_data(0, 1)]
    assert both == first + second  # the rounds' single iterator yields the epochs back to back
    assert [len(b) for b in first] == [100] * 10 + [50]  # partial last batch kept off TPU
    assert first != second and sorted(sum(first, [])) == sorted(sum(second, []))


def test_the_planted_input_work_runs_in_the_pipeline_and_passes_the_batches_on(tiny_dataset, cpu, monkeypatch):
    # tests/plugins/slowdown.py's --plant-input-work, which gating measurements rely on.
    from tests.plugins import slowdown

    plain = EpochRunner(TINY, "default", cpu, tiny_dataset)
    plain.prepare_inputs()
    expected = [batch[1].numpy().tolist() for batch in plain.epoch_data(0)]
    monkeypatch.setattr(EpochRunner, "batches", EpochRunner.batches)  # restored after the test
    slowdown.plant_input_work(16)
    planted = EpochRunner(TINY, "default", cpu, tiny_dataset)
    planted.prepare_inputs()
    assert [batch[1].numpy().tolist() for batch in planted.epoch_data(0)] == expected


def test_global_batch_must_divide_over_replicas(tiny_dataset):
    three_replicas = SimpleNamespace(kind="gpu", replicas=3, is_tpu=False, strategy=None)
    with pytest.raises(ValueError, match="must divide evenly over 3 replicas"):
        EpochRunner(TINY, "default", three_replicas, tiny_dataset)


def top2_accuracy(y_true, y_pred):
    return keras.metrics.sparse_top_k_categorical_accuracy(y_true, y_pred, k=2)


@pytest.mark.parametrize("metric, name", [
    (keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2"), "top2"),
    (top2_accuracy, "top2_accuracy"),
])
def test_a_metric_object_or_function_is_checked_and_recorded_by_its_name(tiny_dataset, cpu, metric, name):
    """Model.compile takes a metric as a name, a Metric object or a function: so does a workload.
    A Metric object is copied for each model (its state is its model's), so it can be reused."""
    workload = TINY.but(metric=metric, higher_is_better=True if callable(metric) and not hasattr(
        metric, "get_config") else None)
    result = runner.train(workload, "default", cpu, tiny_dataset)
    again = runner.train(workload, "default", cpu, tiny_dataset)
    assert result.measurement.workload["metric"] == name and result.goal == ">="
    assert 0 < result.test_metric <= 1 and result.test_metric == again.test_metric
    assert all(0 < epoch.val_metric <= 1 for epoch in result.epochs)


def test_a_model_function_that_raises_is_one_line_naming_it_its_arguments_and_its_error(tiny_dataset, cpu):
    def broken(input_shape, units=(16,), classes=10):
        raise ValueError("Dense units must be positive, got -1")

    with pytest.raises(runner.ModelFunctionError) as raised:
        runner.train(TINY.but(model=broken), "default", cpu, tiny_dataset)
    message = str(raised.value)
    assert "broken(input_shape=(28, 28), units=(16,), classes=10) raised ValueError: Dense units" in message
    assert isinstance(raised.value.__cause__, ValueError)


def two_towers(input_shape, units=8, classes=2):
    """A functional model with two named inputs: its input_shape is the data's per-input shapes."""
    left = keras.Input(shape=input_shape["left"], name="left")
    right = keras.Input(shape=input_shape["right"], name="right")
    joined = keras.layers.Concatenate()([keras.layers.Dense(units, activation="relu")(left),
                                         keras.layers.Flatten()(right)])
    return keras.Model({"left": left, "right": right}, keras.layers.Dense(classes, activation="softmax")(joined))


PARTS = {"train": slice(0, 1200), "validation": slice(1200, 1300), "test": slice(1300, None)}


def two_inputs() -> dict:
    rng = np.random.default_rng(0)
    left, right = rng.normal(size=(1500, 6)).astype("float32"), rng.normal(size=(1500, 3, 2)).astype("float32")
    y = (left[:, 0] + right[:, 0, 0] > 0).astype("int64")
    return {part: ({"left": left[rows], "right": right[rows]}, y[rows])
            for part, rows in PARTS.items()}


@pytest.mark.parametrize("pipeline", ["tf.data", "numpy"])
def test_a_model_with_several_named_inputs_trains_from_a_dict_of_arrays(cpu, pipeline):
    from fitbench.measure import datasets

    workload = TINY.but(name="two-towers", dataset=two_inputs, model=two_towers, model_args={}, validation=None,
                        batch_size=32, variant=Variant(pipeline=pipeline))
    result = runner.train(workload, "default", cpu, datasets.load(two_inputs))
    assert result.measurement.workload["input_shape"] == {"left": [6], "right": [3, 2]}
    assert len(result.epochs) == workload.schedule("default", "cpu").epochs and result.test_metric > 0.6
    assert result.flops_per_sample > 0  # both towers' layers counted


def species_and_size(input_shape, units=16, classes=3):
    """Two outputs: a class (checked) and a regression (trained, not checked)."""
    inputs = keras.Input(shape=input_shape)
    hidden = keras.layers.Dense(units, activation="relu")(inputs)
    return keras.Model(inputs, {"species": keras.layers.Dense(classes, activation="softmax", name="species")(hidden),
                                "size": keras.layers.Dense(1, name="size")(hidden)})


def two_targets() -> dict:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1500, 5)).astype("float32")
    species, size = np.argmax(x[:, :3], axis=1), x[:, 3:].sum(axis=1, keepdims=True)
    return {part: (x[rows], {"species": species[rows], "size": size[rows]})
            for part, rows in PARTS.items()}


def test_a_model_with_several_outputs_checks_the_output_its_metric_names(cpu):
    from fitbench.measure import datasets

    workload = TINY.but(name="two-heads", dataset=two_targets, model=species_and_size, model_args={}, validation=None,
                        loss={"species": "sparse_categorical_crossentropy", "size": "mse"},
                        metric={"species": "accuracy"}, batch_size=32)
    assert workload.metric_name == "species_accuracy" and workload.goal == ">="
    result = runner.train(workload, "default", cpu, datasets.load(two_targets))
    assert result.measurement.workload["metric"] == "species_accuracy"
    assert 0.5 < result.test_metric <= 1 and all(0 < epoch.val_metric <= 1 for epoch in result.epochs)
    with pytest.raises(ValueError, match="names 2 outputs; a workload checks one metric"):
        TINY.but(metric={"species": "accuracy", "size": "mae"})


def test_a_record_of_a_functions_data_names_no_pixel_scale_and_older_records_read_alike(cpu):
    """pixel_scale scales registered images only: a function's data records none, and a record
    written before (naming the unused 1/255) still measures the same thing as a new one."""
    from fitbench.measure import datasets

    workload = TINY.but(name="two-towers", dataset=two_inputs, model=two_towers, model_args={}, validation=None)
    record = runner.train(workload, "default", cpu, datasets.load(two_inputs))
    assert "pixel_scale" not in record.measurement.workload
    older = record.to_json()
    older["measurement"]["workload"]["pixel_scale"] = 1 / 255
    assert Record.from_json(older).measurement.differences(record.measurement) == []
