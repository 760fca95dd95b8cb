"""Profiles and schedules, and that every benchmark file declares what each profile needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitbench.devices import KINDS
from fitbench.workloads import PROFILES, Schedule, Workload, per_device
from fitbench.workloads import load_benchmark_file as load

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("test_*.py"))


def test_a_schedule_needs_a_timed_round():
    with pytest.raises(ValueError, match="at least 2 epochs"):
        Schedule(epochs=1)


def test_unknown_profile_lists_the_known_ones():
    workload = Workload("w", "mnist", model=print, schedules={"full": Schedule(epochs=3)})
    with pytest.raises(KeyError, match="has no schedule for profile 'smoke'; it has full"):
        workload.schedule("smoke")


def test_but_changes_one_hyperparameter():
    workload = Workload("w", "mnist", model=print, schedules={"full": Schedule(epochs=3)})
    assert workload.but(batch_size=512).batch_size == 512 and workload.batch_size == 32


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_files_declare_every_profile(path):
    module = load(path)
    workload = module.WORKLOAD
    assert set(workload.schedules) == set(PROFILES)
    for profile in PROFILES:
        for kind in KINDS:
            schedule = workload.schedule(profile, kind)
            assert schedule.epochs >= 3 or profile == "full", "bounded profiles keep at least 2 timed rounds"
            assert schedule.bound or schedule == workload.schedule("full", kind), "a bounded schedule says why"
    thresholds = getattr(module, "MIN_TEST_ACCURACY", None) or module.MIN_VAL_ACCURACY
    grid = getattr(module, "GRID", None) or getattr(module, "BATCH_SIZES", None)
    if grid is None:  # one case: a threshold per profile, or per device kind
        for profile in PROFILES:
            for kind in KINDS:
                assert 0 < per_device(thresholds[profile], kind, profile) < 1
        return
    assert set(thresholds["full"]) == set(thresholds["default"]) == set(grid), "every case runs in full and default"
    assert thresholds["smoke"] and set(thresholds["smoke"]) <= set(grid)


def test_a_schedule_per_device_kind():
    per_kind = {"cpu": Schedule(epochs=4, train_samples=10, bound="cpu"), "gpu": Schedule(epochs=4)}
    workload = Workload("w", "mnist", model=print, schedules={"default": per_kind})
    assert workload.schedule("default", "cpu").train_samples == 10
    assert workload.schedule("default", "gpu") == Schedule(epochs=4)
    with pytest.raises(KeyError, match="has no entry for device 'tpu'; it has cpu, gpu"):
        workload.schedule("default", "tpu")


def test_cnn_is_the_guides_model_and_keeps_three_rounds():
    module = load(next(p for p in BENCHMARKS if p.stem == "test_fashion_cnn"))
    workload = module.WORKLOAD
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
    module = load(next(p for p in BENCHMARKS if p.stem == "test_batch_size"))
    assert module.WORKLOAD.schedule("default") == module.WORKLOAD.schedule("full") == Schedule(epochs=5)
