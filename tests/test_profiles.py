"""Profiles and schedules, and that every benchmark file declares an experiment each profile can run."""

from __future__ import annotations

import pytest

from fitbench.measure import experiments
from fitbench.measure.devices import KINDS
from fitbench.measure.experiments import Experiment
from fitbench.measure.workloads import PROFILES, Schedule, Workload

EXPERIMENTS = experiments.discover()


def test_a_schedule_needs_a_timed_round():
    with pytest.raises(ValueError, match="at least 2 epochs"):
        Schedule(epochs=1)


def test_unknown_profile_lists_the_known_ones():
    workload = Workload("w", "mnist", model=any_model, schedules={"full": Schedule(epochs=3)})
    with pytest.raises(KeyError, match="has no schedule for profile 'smoke'; it has full"):
        workload.schedule("smoke")


def test_but_changes_one_hyperparameter():
    workload = Workload("w", "mnist", model=any_model, schedules={"full": Schedule(epochs=3)})
    assert workload.but(batch_size=512).batch_size == 512 and workload.batch_size == 32


def test_every_benchmark_file_exports_its_experiment():
    assert set(EXPERIMENTS) == {"test_batch_size", "test_mnist_architecture", "test_fashion_cnn", "test_variants"}


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiments_declare_every_profile(name):
    experiment = EXPERIMENTS[name]
    assert experiment.check() == []
    assert set(experiment.targets) == set(PROFILES) and set(experiment.workload.schedules) == set(PROFILES)
    for case in experiment.cases:
        workload = experiment.workload_of(case)
        for profile in PROFILES:
            for kind in KINDS:
                schedule = workload.schedule(profile, kind)
                assert schedule.epochs >= 3 or profile == "full", "bounded profiles keep at least 2 timed rounds"
                assert schedule.bound or schedule == workload.schedule("full", kind), "a bounded schedule says why"
        # Every case runs in full on every device, and in default on some device (a case too
        # slow for one device kind may leave default there, explicitly); smoke is a subset.
        assert all(experiment.target("full", case, kind) for kind in KINDS)
        assert any(experiment.target("default", case, kind) for kind in KINDS)
    assert any(experiment.target("smoke", case, "cpu") for case in experiment.cases)


def test_a_target_per_device_kind_and_a_subset_per_profile():
    workload = Workload("w", "mnist", model=any_model, schedules={"full": Schedule(epochs=3)})
    one = Experiment("one", workload, targets={"full": {"cpu": 0.8, "gpu": 0.9}})
    assert one.target("full", "", "gpu") == 0.9 and not one.parametrized
    with pytest.raises(KeyError, match="no target for device 'tpu'"):
        one.target("full", "", "tpu")
    grid = Experiment("grid", workload, grid={"a": {"batch_size": 8}, "b": {}}, targets={"full": {"a": 0.5}})
    assert grid.resolve("a", "full", "cpu").workload.batch_size == 8
    assert grid.resolve("b", "full", "cpu") is None  # not in the subset
    with pytest.raises(ValueError, match="split 'train'"):
        Experiment("bad", workload, targets={}, split="train")


def test_a_schedule_per_device_kind():
    per_kind = {"cpu": Schedule(epochs=4, train_samples=10, bound="cpu"), "gpu": Schedule(epochs=4)}
    workload = Workload("w", "mnist", model=any_model, schedules={"default": per_kind})
    assert workload.schedule("default", "cpu").train_samples == 10
    assert workload.schedule("default", "gpu") == Schedule(epochs=4)
    with pytest.raises(KeyError, match="has no entry for device 'tpu'; it has cpu, gpu"):
        workload.schedule("default", "tpu")


def test_cnn_is_the_guides_model_and_keeps_three_rounds():
    workload = EXPERIMENTS["test_fashion_cnn"].workload
    model = workload.model(input_shape=workload.input_shape, **workload.model_args)
    assert model.count_params() == 1_619_470  # the guide's "more than 1.6 million"
    assert workload.schedule("full", "gpu") == Schedule(epochs=2, train_samples=59_904, test_samples=9_984)
    for profile in ("default", "smoke"):
        for kind in KINDS:
            assert workload.schedule(profile, kind).epochs >= 4, "3 timed rounds"
    # Only the CPU case is bounded to a subset in default; accelerators train all 59,904 images.
    assert workload.schedule("default", "cpu").train_samples < 59_904
    for kind in ("gpu", "tpu"):
        assert workload.schedule("default", kind).train_samples == 59_904


def test_batch_size_default_is_the_notebook_schedule():
    workload = EXPERIMENTS["test_batch_size"].workload
    assert workload.schedule("default") == workload.schedule("full") == Schedule(epochs=5)


def test_a_file_without_an_experiment_is_a_clear_error(tmp_path):
    path = tmp_path / "test_bare.py"
    path.write_text("def test_x():\n    pass\n")
    with pytest.raises(ValueError, match="exports no EXPERIMENT"):
        experiments.load(path)


def test_the_f32_variants_are_the_other_experiments_benchmarks():
    # The same measurement: test_variants' f32 cases are read from those files, not copied.
    variants, batch_size, cnn = (EXPERIMENTS[name] for name in ("test_variants", "test_batch_size", "test_fashion_cnn"))
    assert variants.workload_of("mlp-b32-f32") == batch_size.workload_of("batch_size-32")
    assert variants.workload_of("mlp-b512-f32") == batch_size.workload_of("batch_size-512")
    assert variants.workload_of("cnn-f32") == cnn.workload
    assert variants.workload_of("cnn-bf16").variant.precision == "mixed_bfloat16"


def any_model(input_shape, **model_args):
    """A model function fitbench can call with any model_args (these tests build no model)."""


def experiment_of(metric: str = "accuracy", **fields) -> Experiment:
    workload = Workload("w", "mnist", model=any_model, metric=metric,
                        schedules={"smoke": Schedule(epochs=3), "default": Schedule(epochs=4)})
    return Experiment(title="T", workload=workload, **fields)


@pytest.mark.parametrize("fields, metric, problem", [
    ({"grid": {"a": {}, "b": {}}, "targets": {"smoke": {"a": 0.5, "c": 0.5}, "default": {"a": 0.5}}}, "accuracy",
     "targets['smoke'] names 'c', not in the grid (a, b): fix the case id or add it to the grid"),
    ({"targets": {"smoke": 1.5, "default": 0.5}}, "accuracy",
     "smoke/-: accuracy target 1.5 is not in (0, 1], so accuracy >= 1.5 can never be met (or always is); give a "
     "fraction, 0.85 for 85%"),
    ({"targets": {"smoke": {"cpu": 0.5, "gpu": 85, "tpu": None}, "default": 0.5}}, "accuracy",
     "smoke/-/gpu: accuracy target 85 is not in (0, 1]"),
    ({"targets": {"smoke": -1.0, "default": 3.0}}, "mae",
     "smoke/-: mae target -1: an error is never below 0, so mae <= -1 can never be met; give the largest error"),
    ({"grid": {"a": {}}, "targets": {"smoke": {}, "default": {"a": 0.5}}}, "accuracy",
     "profile 'smoke' has no targets, so it would run nothing: give a target per case, or remove the profile"),
    ({"targets": {"smoke": {"cpu": None, "gpu": None, "tpu": None}, "default": 0.5}}, "accuracy",
     "profile 'smoke' has no target, so it would run nothing"),
    ({"targets": {"smoke": {}, "default": 0.5}}, "accuracy",  # one line, not one more per device
     "profile 'smoke' has no target, so it would run nothing: give one, or remove the profile"),
])
def test_an_experiment_that_cannot_run_as_meant_says_why_and_how_to_fix_it(fields, metric, problem):
    problems = experiment_of(metric, **fields).check()
    assert len(problems) == 1 and problems[0].startswith(problem), problems


@pytest.mark.e2e
def test_a_bad_experiment_fails_collection_before_anything_trains(tmp_path):
    from tests.helpers import ROOT, run_pytest

    text = (ROOT / "tests" / "sample" / "bench_tiny.py").read_text()
    bad = text.replace('targets={"full": 0.5, "default": 0.5, "smoke": 0.5}',
                       'grid={"a": {}}, targets={"full": {"a": 0.5}, "default": {"a": 0.5}, "smoke": {"b": 0.5}}')
    assert bad != text
    (tmp_path / "bench_bad.py").write_text(bad)
    run = run_pytest(str(tmp_path / "bench_bad.py"), "-o", "python_files=bench_*.py", "--devices", "cpu",
                     "--profile", "smoke")
    assert run.returncode == 2, run.stdout + run.stderr  # a collection error: nothing ran
    assert "bench_bad.py: EXPERIMENT targets['smoke'] names 'b', not in the grid (a)" in run.stdout
    assert "epoch 1/" not in run.stdout


def test_a_misspelled_metric_is_named_with_the_likely_one():
    with pytest.raises(ValueError, match="metric 'accurracy' is not a Keras metric name "
                                         "\\(did you mean 'accuracy'\\?\\)"):
        Workload("w", "fashion_mnist", lambda **_: None, {}, metric="accurracy")
    with pytest.raises(ValueError, match="is not a metric Keras takes: give a name"):
        Workload("w", "fashion_mnist", lambda **_: None, {}, metric=lambda y_true, y_pred: y_pred)


def test_a_metrics_direction_comes_from_its_name_its_class_or_the_user():
    import keras

    metric = keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")
    top2 = Workload("w", "d", lambda **_: None, {}, metric=metric)
    assert (top2.metric_name, top2.goal) == ("top2", ">=")

    def pinball(y_true, y_pred):
        return y_pred

    with pytest.raises(ValueError, match="metric 'pinball' has no known direction; give higher_is_better"):
        Workload("w", "d", lambda **_: None, {}, metric=pinball)
    assert Workload("w", "d", lambda **_: None, {}, metric=pinball, higher_is_better=False).goal == "<="


def test_a_model_function_fitbench_cannot_call_fails_at_collection_in_one_line():
    def cnn(input_shape, num_classes):  # the parameter must be named `classes`
        return None

    workload = Workload("digits-cnn", "digits", cnn, {"smoke": Schedule(2)}, metric="accuracy")
    problems = Experiment(title="t", workload=workload, targets={"smoke": 0.5}).check()
    (line,) = [p for p in problems if "cannot be called" in p]
    assert "cnn(input_shape, num_classes) cannot be called as fitbench calls it" in line
    assert "missing a required argument: 'num_classes'" in line and "`classes` (the data's class count)" in line

    def mlp(input_shape, units=(16,), classes=10):
        return None

    grid = {"wide": {"model_args": {"units": (64,)}}, "typo": {"model_args": {"unit": (64,)}}}
    problems = Experiment(title="t", workload=workload.but(model=mlp), grid=grid,
                          targets={"smoke": {"wide": 0.5, "typo": 0.5}}).check()
    assert [p.split(":")[0] for p in problems if "cannot be called" in p] == ["typo"]
    assert any("got an unexpected keyword argument 'unit'" in p for p in problems)


def test_fitbench_0_1_names_say_what_they_became():
    with pytest.raises(ModuleNotFoundError, match="fitbench 0.2 moved it to fitbench.measure.workloads; a benchmark "
                                                  "file needs only `from fitbench import Experiment"):
        from fitbench.workloads import Workload  # noqa: F401
    from tests.helpers import make_record

    with pytest.raises(AttributeError, match="is fitbench 0.1's; .* result.assert_target\\(case.split"):
        make_record("t[a]").assert_accuracy("test_accuracy", 0.8)
    with pytest.raises(ModuleNotFoundError, match="No module named 'fitbench.nothing'$"):
        import fitbench.nothing  # noqa: F401 - a name that never existed: Python's own error
