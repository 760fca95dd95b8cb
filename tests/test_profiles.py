"""Profiles and schedules, and that every benchmark file declares what each profile needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitbench.workloads import PROFILES, Schedule, Workload
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
    for profile, schedule in workload.schedules.items():
        assert schedule.epochs >= 3 or profile == "full", "bounded profiles keep at least 2 timed rounds"
        assert schedule.bound or schedule == workload.schedule("full"), "a bounded schedule says why"
    grid = set(getattr(module, "GRID", None) or module.BATCH_SIZES)
    thresholds = getattr(module, "MIN_TEST_ACCURACY", None) or module.MIN_VAL_ACCURACY
    assert set(thresholds["full"]) == set(thresholds["default"]) == grid, "every case runs in full and default"
    assert thresholds["smoke"] and set(thresholds["smoke"]) <= grid


def test_batch_size_default_is_the_notebook_schedule():
    module = load(next(p for p in BENCHMARKS if p.stem == "test_batch_size"))
    assert module.WORKLOAD.schedule("default") == module.WORKLOAD.schedule("full") == Schedule(epochs=5)
