"""Live progress: a line per epoch as it ends, with the time left for the test and the session.

The runner calls back between rounds (never inside a timed epoch); a line costs a string format
and a write. Time left for the test is its remaining epochs at the pace of its last epoch
(training and validation). For the session, each test still to run costs its epochs times
what one of its epochs computes (optimizer steps and FLOPs, `fitbench.measure.flops.EpochWork`)
at the pace measured so far: seconds = a x steps + b x FLOPs, fitted on the tests seen, so a CNN
after MLPs, or batch 32 after batch 512, is not taken at the wrong pace. Each test also costs
the start-up and end seen so far (building, tracing, the final evaluation). A test whose work
is unknown counts the session's mean epoch. A rough figure, marked with "~".
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fitbench.compare.record import Epoch
from fitbench.measure.flops import EpochWork


def duration(seconds: float) -> str:
    """'45 s', '2 min 05 s', '1 h 02 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass(frozen=True)
class Pending:
    """A test still to run: its epochs, and one epoch's work (None: unknown)."""

    epochs: int
    work: EpochWork | None = None


@dataclass
class Pace:
    """Seconds per epoch as a x steps + c x FLOPs, fitted on the tests seen so far (each test's
    mean steady epoch, epochs 2..N; relative errors weighed alike): `a` is one step's overhead,
    `c` a model's seconds per FLOP. A model already seen has its own `c` (a CNN runs its FLOPs
    far faster than a small MLP); another one takes the `c` fitted on every test seen. Plus each
    test's start-up and end beyond its steady epochs, on average."""

    observed: dict[str, tuple[EpochWork, float, int]] = field(default_factory=dict)  # test -> work, seconds, epochs
    overheads: list[float] = field(default_factory=list)

    def add(self, test_id: str, work: EpochWork, seconds: float) -> None:
        _, total, count = self.observed.get(test_id, (work, 0.0, 0))
        self.observed[test_id] = (work, total + seconds, count + 1)

    def coefficients(self, model: str | None = None) -> tuple[float, float] | None:
        """(seconds per step, seconds per FLOP), both >= 0, for `model` when it was seen, else for
        any; None before any steady epoch."""
        rows = [(work, total / count) for work, total, count in self.observed.values()]
        if not rows:
            return None
        models = sorted({work.model for work, _ in rows})
        if model in models and len(models) > 1:
            # One step cost for all, one FLOP rate per model.
            x = np.array([[work.steps / y] + [work.flops / y if work.model == m else 0.0 for m in models]
                          for work, y in rows])
            fitted = _nonnegative_fit(x)
            if fitted is not None:
                return fitted[0], fitted[1 + models.index(model)]
            own = [(work, y) for work, y in rows if work.model == model]
            return 0.0, float(np.median([y / work.flops for work, y in own]))
        if model in models:
            rows = [(work, y) for work, y in rows if work.model == model]
        x = np.array([[work.steps / y, work.flops / y] for work, y in rows])
        fitted = _nonnegative_fit(x)
        if fitted is not None:
            return fitted[0], fitted[1]
        # FLOPs alone (one test fits either feature exactly; the FLOPs say more about another model).
        flops = x[:, 1]
        return 0.0, float(flops @ np.ones(len(rows)) / (flops @ flops))

    def epoch_seconds(self, work: EpochWork) -> float | None:
        fitted = self.coefficients(work.model)
        return None if fitted is None else fitted[0] * work.steps + fitted[1] * work.flops

    @property
    def overhead(self) -> float:
        return sum(self.overheads) / len(self.overheads) if self.overheads else 0.0


def _nonnegative_fit(x: np.ndarray) -> list[float] | None:
    """Least squares of x @ coefficients = 1 (relative errors), when the rows determine every
    coefficient and none comes out negative; else None."""
    if len(x) < x.shape[1] or np.linalg.matrix_rank(x) < x.shape[1]:
        return None
    coefficients, *_ = np.linalg.lstsq(x, np.ones(len(x)), rcond=None)
    return None if (coefficients < 0).any() else [float(c) for c in coefficients]


@dataclass
class Progress:
    """The session's progress. `pending` maps each test not yet finished to its epochs and work;
    None when this process cannot know the session's tests (a pytest-xdist worker)."""

    write: Callable[[str], None]
    pending: dict[str, Pending] | None = None
    prefix: str = ""
    clock: Callable[[], float] = time.perf_counter
    pace: Pace = field(default_factory=Pace)
    _seconds: float = field(default=0.0, init=False)  # wall time of the epochs reported so far
    _epochs: int = field(default=0, init=False)
    _last_end: float | None = field(default=None, init=False)  # when the last epoch reported ended

    def test(self, test_id: str, epochs: int, metric: str = "accuracy") -> Callable[[Epoch], None]:
        """The callback for one test's epochs (the runner's `on_epoch`); `metric` names the workload's."""
        started = self.clock() if self._last_end is None else self._last_end
        last = self.clock()
        done = 0
        label = test_id.rsplit("::", 1)[-1]
        work = self.pending.get(test_id, Pending(epochs)).work if self.pending is not None else None

        def on_epoch(epoch: Epoch) -> None:
            nonlocal last, done
            now = self.clock()
            pace = now - last
            last, done = now, done + 1
            self._seconds += pace
            self._epochs += 1
            if done > 1 and work is not None:
                self.pace.add(test_id, work, pace)
            if done == 2:  # start-up and tracing: the first epoch's time, and the wait before it, past a steady one
                self.pace.overheads.append(max(0.0, now - started - 2 * pace))
            self._last_end = now
            left = [f"~{duration((epochs - done) * pace)} test"]
            if self.pending is not None:
                left.append(f"~{duration((epochs - done) * pace + self.later(test_id))} session")
            val = "" if math.isnan(epoch.val_metric) else f", val {epoch.val_metric:.3f}"
            tracing = " (tracing included)" if done == 1 else ""
            self.write(f"{self.prefix}{label} epoch {done}/{epochs}: {epoch.seconds:.3f} s{tracing}, "
                       f"loss {epoch.loss:.4f}, {metric} {epoch.metric:.3f}{val}; left {', '.join(left)}")

        return on_epoch

    def later(self, test_id: str) -> float:
        """Seconds the tests after `test_id` will take, by their work at the pace so far."""
        mean_epoch = self._seconds / self._epochs if self._epochs else 0.0
        total = 0.0
        for other, pending in (self.pending or {}).items():
            if other == test_id:
                continue
            per_epoch = self.pace.epoch_seconds(pending.work) if pending.work is not None else None
            total += pending.epochs * (mean_epoch if per_epoch is None else per_epoch) + self.pace.overhead
        return total

    def finished(self, test_id: str) -> None:
        """A test ended (passed, failed or skipped): its epochs no longer count as to do."""
        if self.pending is not None:
            self.pending.pop(test_id, None)
