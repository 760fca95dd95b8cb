"""Test-only: plant a known slowdown in every timed epoch, to measure what the gate detects.

`pytest -p tests.plugins.slowdown --plant-slowdown 0.2 ...` makes each timed round sleep for
20% of the time its training took, inside the round (so both pytest-benchmark's clock and
the runner's see it). Sleeping uses no CPU, so the slowdown is exactly the planted fraction.
"""

from __future__ import annotations

import time

from fitbench.measure.runner import EpochRunner


def pytest_addoption(parser):
    parser.getgroup("fitbench").addoption(
        "--plant-slowdown", type=float, default=0.0, metavar="FRACTION",
        help="(tests only) sleep FRACTION x each timed epoch's training time inside the epoch",
    )


def pytest_configure(config):
    fraction = config.getoption("plant_slowdown")
    if fraction > 0:
        plant(fraction)


def plant(fraction: float) -> None:
    train_epoch = EpochRunner.train_epoch

    def slowed_train_epoch(self, *args, **kwargs):
        start = time.perf_counter()
        train_epoch(self, *args, **kwargs)
        time.sleep(fraction * (time.perf_counter() - start))
        self._last_epoch_seconds = time.perf_counter() - start

    EpochRunner.train_epoch = slowed_train_epoch
