"""Training variants: parsed and checked, honoured by the runner (precision policy set and
restored, XLA explicit, k steps per call, the NumPy pipeline), part of the measurement; speed-ups
against the f32 baseline; time to target; efficiency against a measured peak."""

from __future__ import annotations

import dataclasses
import json
import math

import keras
import pytest

from fitbench.compare.results import efficiency, fastest_reaching_target, variant_speedups
from fitbench.core.record import DEFAULT_VARIANT, Check, Epoch, Measurement, Record
from fitbench.measure import devices, peak, runner
from fitbench.measure.experiments import load_module
from fitbench.measure.workloads import Schedule, Variant
from fitbench.present import format as text_format
from tests.helpers import ROOT, RecordingBenchmark, make_record

TINY = load_module(ROOT / "tests" / "sample" / "bench_tiny.py").WORKLOAD.but(
    batch_size=100, schedules={"default": Schedule(epochs=3, train_samples=1050, test_samples=500)})


# --- the variant as data ------------------------------------------------------------------------

def test_default_variant_is_the_records_default():
    assert Variant().as_dict() == DEFAULT_VARIANT and Variant().is_default and Variant().label == "f32"


def test_labels_name_every_factor():
    assert Variant("mixed_bfloat16", True, 32, "numpy").label == "bf16-xla-spe32-numpy"


def test_parse_applies_settings_on_a_base():
    base = Variant(steps_per_execution=32)
    parsed = Variant.parse(["precision=mixed_bfloat16", "jit_compile=on"], base)
    assert parsed == Variant("mixed_bfloat16", True, 32, "tf.data")


@pytest.mark.parametrize("setting, message", [
    ("precision=float64", "precision 'float64' is not one of float32, mixed_bfloat16, mixed_float16"),
    ("xla=on", "KEY one of precision, jit_compile, steps_per_execution, pipeline"),
    ("steps_per_execution=0", "steps_per_execution must be a whole number >= 1"),
    ("jit_compile=maybe", "jit_compile is on or off"),
    ("pipeline=pandas", "pipeline 'pandas' is not one of tf.data, numpy"),
])
def test_bad_variants_say_what_is_allowed(setting, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Variant.parse([setting])


@pytest.mark.parametrize("kind, precision, flags, capabilities, slow", [
    ("cpu", "float32", set(), None, False),
    ("cpu", "mixed_bfloat16", {"avx512_bf16"}, None, False),
    ("cpu", "mixed_bfloat16", {"amx_bf16"}, None, False),
    ("cpu", "mixed_bfloat16", {"avx2"}, None, True),
    ("cpu", "mixed_float16", {"avx512_bf16", "avx512_fp16"}, None, True),
    ("gpu", "mixed_float16", None, [(7, 5)], False),
    ("gpu", "mixed_float16", None, [(6, 1)], True),
    ("gpu", "mixed_bfloat16", None, [(8, 0), (7, 0)], True),  # the oldest GPU decides
    ("gpu", "mixed_bfloat16", None, [(9, 0)], False),
    ("tpu", "mixed_bfloat16", None, None, False),
    ("tpu", "mixed_float16", None, None, True),
])
def test_which_precisions_a_device_runs_fast(kind, precision, flags, capabilities, slow):
    reason = devices.slow_precision(kind, precision, frozenset(flags or ()), capabilities or [])
    assert (reason is not None) == slow


# --- the runner honours the variant --------------------------------------------------------------

def test_mixed_precision_is_set_for_the_model_and_restored(tiny_dataset, cpu):
    before = keras.config.dtype_policy().name
    trainer = runner.EpochRunner(TINY.but(variant=Variant(precision="mixed_bfloat16")), "default", cpu, tiny_dataset)
    record = trainer.run()
    assert keras.config.dtype_policy().name == before == "float32"
    assert trainer.model.layers[1].dtype_policy.name == "mixed_bfloat16"
    assert trainer.model.layers[-1].compute_dtype == "float32"  # the softmax output
    assert record.measurement.variant["precision"] == "mixed_bfloat16"


def test_the_policy_is_restored_when_building_fails(tiny_dataset, cpu):
    def broken(input_shape, **_):
        raise RuntimeError("no model")

    trainer = runner.EpochRunner(TINY.but(model=broken, variant=Variant(precision="mixed_float16")),
                                 "default", cpu, tiny_dataset)
    with pytest.raises(RuntimeError, match="no model"):
        trainer.run()
    assert keras.config.dtype_policy().name == "float32"


def test_float16_trains_with_loss_scaling_and_records_the_inner_optimizer(tiny_dataset, cpu):
    trainer = runner.EpochRunner(TINY.but(variant=Variant(precision="mixed_float16")), "default", cpu, tiny_dataset)
    record = trainer.run()
    assert isinstance(trainer.model.optimizer, keras.optimizers.LossScaleOptimizer)
    plain = runner.EpochRunner(TINY, "default", cpu, tiny_dataset).run()
    assert record.measurement.workload == plain.measurement.workload
    assert record.measurement.differences(plain.measurement) == [
        "variant.precision: 'mixed_float16' != 'float32'"]


def test_xla_is_explicit(tiny_dataset, cpu):
    trainer = runner.EpochRunner(TINY.but(variant=Variant(jit_compile=True)), "default", cpu, tiny_dataset)
    trainer.run()
    assert trainer.model.jit_compile is True
    plain = runner.EpochRunner(TINY, "default", cpu, tiny_dataset)
    plain.run()
    assert plain.model.jit_compile is False  # not "auto"


@pytest.mark.parametrize("pipeline", ["tf.data", "numpy"])
def test_k_steps_per_call_train_each_epoch_exactly(tiny_dataset, cpu, monkeypatch, pipeline):
    # 1,050 samples in batches of 100: 11 steps an epoch, calls of 4, 4 and 3 steps.
    trainer = runner.EpochRunner(TINY.but(variant=Variant(steps_per_execution=4, pipeline=pipeline)),
                                 "default", cpu, tiny_dataset)
    calls: list[tuple[int, int]] = []
    original = type(trainer.pipeline).calls

    def spy(self):
        for first, last, iterator in original(self):
            calls.append((first, last))
            yield first, last, iterator

    monkeypatch.setattr(type(trainer.pipeline), "calls", spy)
    record = trainer.run(RecordingBenchmark())
    assert calls == [(0, 3), (4, 7), (8, 11)] * 2 if pipeline == "numpy" else [(0, 3), (4, 7), (8, 10)] * 2
    # Every sample trained once per epoch: 3 epochs x 11 steps.
    assert int(trainer.model.optimizer.iterations.numpy()) == 3 * 11
    assert record.measurement.variant["steps_per_execution"] == 4


def test_numpy_pipeline_trains_from_the_arrays_through_fits_adapter(tiny_dataset, cpu, monkeypatch):
    fits = []
    original_fit = keras.Model.fit

    def fit(self, x=None, y=None, **kwargs):
        fits.append(type(x).__name__)
        return original_fit(self, x, y, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    benchmark = RecordingBenchmark()
    numpy = TINY.but(variant=Variant(pipeline="numpy"))
    record = runner.EpochRunner(numpy, "default", cpu, tiny_dataset).run(benchmark)
    assert fits == ["ndarray"]  # epoch 1; the rounds run fit's epoch loop
    assert benchmark.rounds == 2 and len(record.epochs) == 3
    assert record.measurement.variant["pipeline"] == "numpy" and record.test_metric > 0.5


# --- speed-ups, time to target, efficiency ------------------------------------------------------

def _record(case: str, seconds: list[float], variant: dict | None = None, accuracy: float = 0.9,
            threshold: float = 0.8) -> Record:
    measurement = Measurement("default", "cpu", 1, 32, 32, {"epochs": len(seconds)}, {"name": "w"},
                              dict(variant or DEFAULT_VARIANT))
    epochs = [Epoch(s, 0.5, 0.9, test_metric=accuracy) for s in seconds]
    record = Record(measurement, epochs, test_metric=accuracy, name=f"test_variants[cpu-{case}]", case=case,
                    flops_per_sample=1_000_000)
    record.check = Check("test", "accuracy", ">=", threshold, accuracy)
    return record


def test_a_variant_is_compared_with_the_f32_of_the_same_measurement():
    base = _record("w-f32", [1.0, 1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.0])
    fast = _record("w-bf16", [0.6, 0.5, 0.51, 0.49, 0.5, 0.5, 0.52, 0.48],
                   {**DEFAULT_VARIANT, "precision": "mixed_bfloat16"})
    (speedup,) = variant_speedups([base, fast])
    assert speedup.baseline_case == "w-f32" and speedup.variant == "bf16"
    assert speedup.low < speedup.ratio < speedup.high and 1.9 < speedup.ratio < 2.1
    (fastest, _group), = fastest_reaching_target([base, fast])
    assert fastest is fast


def test_a_variant_below_its_target_is_never_the_fastest():
    base = _record("w-f32", [1.0] * 6)
    fast = _record("w-xla", [0.5] * 6, {**DEFAULT_VARIANT, "jit_compile": True}, accuracy=0.7)
    (fastest, _group), = fastest_reaching_target([base, fast])
    assert fastest is base


def test_different_measurements_are_not_paired():
    base = _record("w-f32", [1.0] * 6)
    other = _record("w-bf16", [0.5] * 6, {**DEFAULT_VARIANT, "precision": "mixed_bfloat16"})
    other.measurement = Measurement("default", "cpu", 1, 64, 64, {"epochs": 6}, {"name": "w"}, other.variant)
    assert variant_speedups([base, other]) == []


def test_time_to_target_counts_training_seconds_until_the_target():
    record = _record("w-f32", [3.0, 1.0, 1.0, 1.0])
    for epoch, value in zip(record.epochs, [0.5, 0.7, 0.85, 0.9], strict=True):
        epoch.test_metric = value
    reached = record.time_to_target()
    assert (reached.seconds, reached.epochs) == (5.0, 3)
    assert record.to_json()["derived"]["time_to_target"]["seconds"] == 5.0


def test_time_to_target_of_an_error_metric_counts_until_it_falls_below():
    record = _record("w-f32", [3.0, 1.0, 1.0, 1.0])
    record.measurement.workload.update(metric="mae", goal="<=")
    record.check = Check("test", "mae", "<=", 40.0, 38.0)
    for epoch, value in zip(record.epochs, [90.0, 55.0, 39.0, 38.0], strict=True):
        epoch.test_metric = value
    reached = record.time_to_target()
    assert (reached.seconds, reached.epochs, reached.metric) == (5.0, 3, "test mae")


def test_time_to_target_is_null_with_the_reason_when_never_reached():
    record = _record("w-f32", [3.0, 1.0], accuracy=0.7)
    never = record.time_to_target()
    assert never.seconds is None and "never reached >= 0.8 in 2 epochs (best 0.7000)" in never.reason
    assert Record.from_json(record.to_json()).time_to_target().reason == never.reason


def test_efficiency_is_achieved_over_the_peak_of_the_variants_precision():
    measured = {"cpu": {"float32": 100.0, "mixed_bfloat16": 400.0}}
    f32 = make_record("w", epoch_seconds=[2.0, 1.0, 1.0], samples=50_000)
    f32.flops_per_sample = 1_000_000  # 50,000 samples/s x 1 MFLOP = 50 GFLOP/s
    assert efficiency(f32, measured) == pytest.approx(0.5)
    bf16 = dataclasses.replace(f32, measurement=dataclasses.replace(
        f32.measurement, variant={**DEFAULT_VARIANT, "precision": "mixed_bfloat16"}))
    assert efficiency(bf16, measured) == pytest.approx(0.125)
    fp16 = dataclasses.replace(f32, measurement=dataclasses.replace(
        f32.measurement, variant={**DEFAULT_VARIANT, "precision": "mixed_float16"}))
    assert efficiency(fp16, measured) is None  # not measured: not fast here
    assert efficiency(make_record("w", epoch_seconds=[2.0]), measured) is None  # no timed epoch


def test_the_peak_is_measured_once_per_fingerprint_as_the_best_of_the_swept_sizes(cpu, monkeypatch):
    calls = []
    rates = {512: 90.0, 1024: 123.0, 2048: 110.0}
    monkeypatch.setattr(peak, "matmul_gflops",
                        lambda device, precision, n: calls.append(precision) or rates[n])
    first, cache = peak.peaks([cpu], {})
    assert set(first["cpu"].values()) == {123.0}  # an upper bound: the best size's rate
    again, _ = peak.peaks([cpu], cache)
    sizes = len(peak.SIZES["cpu"])
    assert first == again and calls == [p for p in peak.fast_precisions("cpu") for _ in range(sizes)]
    peak.peaks([cpu], cache, remeasure=True)
    assert len(calls) == 2 * sizes * len(peak.fast_precisions("cpu"))


def test_an_efficiency_above_100_percent_is_never_printed_as_a_figure():
    from fitbench.present.format import percent_of_peak

    assert [percent_of_peak(v) for v in (None, 0.05, 0.42, 1.0, 1.052)] == ["-", "5.0%", "42%", "100%", ">100%"]
    assert percent_of_peak(0.4213, 1) == "42.1%"


def test_a_real_peak_is_a_positive_rate(cpu):
    assert peak.matmul_gflops(cpu, "float32", n=256) > 0


# --- a variant and its f32 twin, in turns in one test ------------------------------------------

def test_a_variant_trains_in_turns_with_its_reference_and_its_speedup_is_paired(tiny_dataset, cpu, monkeypatch):
    order = []
    original = runner.EpochRunner.train_epoch

    def logged(self):
        order.append(self.variant.label)
        original(self)

    monkeypatch.setattr(runner.EpochRunner, "train_epoch", logged)
    workload = TINY.but(variant=Variant(steps_per_execution=4), schedules={
        "default": Schedule(epochs=5, train_samples=1050, test_samples=500)})
    benchmark = RecordingBenchmark()
    record = runner.train(workload, "default", cpu, tiny_dataset, benchmark, reference=workload.but(variant=Variant()))
    # The timed rounds: the reference first in even rounds and second in odd ones.
    ref, var = "f32", Variant(steps_per_execution=4).label
    assert order == [ref, var, var, ref, ref, var, var, ref], order
    assert benchmark.rounds == 4  # only the variant's epochs are the benchmark's rounds
    assert record.reference["variant"] == DEFAULT_VARIANT and len(record.reference["epoch_seconds"]) == 5
    from fitbench.core.record import Record as RecordType

    again = RecordType.from_json(record.to_json(), record.name)
    assert again.reference == record.reference
    record.name, record.case = "test_variants[cpu-tiny-spe4]", "tiny-spe4"
    (speedup,) = variant_speedups([record])
    assert speedup.paired and speedup.baseline_case == "its f32 twin" and speedup.ratio > 0
    assert "unpaired" not in text_format.variant_speedup(speedup)
    # 4 pairs are too few for the signed-rank interval: the paired t interval stands in.
    assert 0 < speedup.low <= speedup.ratio <= speedup.high < math.inf


@pytest.mark.e2e
def test_an_experiments_reference_trains_in_turns_in_each_test_and_counts_in_the_time_left(
        tmp_path, synthetic_data_dir):
    from tests.helpers import run_pytest

    out = tmp_path / "paired.json"
    run = run_pytest("tests/sample/bench_paired.py", "-o", "python_files=bench_*.py", "--offline", "--require-data",
                     "--devices", "cpu", "--profile", "smoke", "--data-dir", str(synthetic_data_dir),
                     "--benchmark-json", str(out), isolate=True)
    assert run.returncode == 0, run.stdout + run.stderr
    (bench,) = json.loads(out.read_text())["benchmarks"]
    reference = bench["extra_info"]["reference"]
    assert reference["variant"] == DEFAULT_VARIANT and len(reference["epoch_seconds"]) == 8
    # The epoch lines come from the session's worker (crash isolation), on stderr.
    assert "left ~" in run.stderr and "session" in run.stderr


def test_a_variant_given_as_a_dict_is_a_variant_and_an_unknown_setting_is_named():
    """A grid's hyperparameters are data: {"variant": {"pipeline": "numpy"}} means Variant(pipeline="numpy")."""
    from tests.helpers import TINY

    assert TINY.but(variant={"pipeline": "numpy"}).variant == Variant(pipeline="numpy")
    with pytest.raises(ValueError, match="variant setting.s. pipelin unknown; a variant takes jit_compile, pipeline"):
        TINY.but(variant={"pipelin": "numpy"})
    with pytest.raises(ValueError, match="is not a Variant"):
        TINY.but(variant="numpy")
