"""Live progress: a line per epoch as it ends, with the time left for the test and the session.

The runner calls back between rounds (never inside a timed epoch); a line costs a string format
and a write. Time left for the test is its remaining epochs at its mean pace since its first
epoch (training and validation; with a twin, a variant's f32 reference, the twin's epochs too:
the two take turns in alternating order, so one gap holds one epoch of the variant and the
next three, and only their mean is one pair's). After the first epoch, which a twin has not
trained yet, the test's work at the pace fitted for its model when one is known, else that
epoch times the trainings it holds. For the session, each test still to run costs its epochs
times what one of its epochs computes (optimizer steps and FLOPs,
`fitbench.measure.flops.EpochWork`) at the pace measured so far (`Pace`: a cost per step, and
per FLOP for each model seen, a model not seen yet at its device's matmul peak), so that a CNN
after MLPs, or batch 32 after batch 512, is not taken at the wrong pace. Each test also costs
the start-up and end seen so far (building, tracing, the final evaluation: a test's wall time
beyond its epochs at its steady pace, measured when it ends, and provisionally after its
second epoch). A test whose work is unknown counts the session's mean epoch. A rough figure,
marked with "~".
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
    """A test still to run: its epochs, one epoch's work (None: unknown), and its device's matmul
    peak in FLOP/s (None: not measured)."""

    epochs: int
    work: EpochWork | None = None
    peak: float | None = None


@dataclass
class Pace:
    """Seconds per epoch as a x steps + c x FLOPs, from the tests seen so far (each test's mean
    steady epoch, epochs 2..N): `a` is one step's overhead, shared; `c` a model's seconds per
    FLOP. A model already seen has its own `c` (a CNN runs its FLOPs many times faster than a
    small MLP does); a model not seen yet is taken at its device's matmul peak, the rate a large
    model nears (tests of small models cost mostly steps). Plus each test's start-up and end
    beyond its steady epochs, on average."""

    observed: dict[str, tuple[EpochWork, float | None, float, int]] = field(default_factory=dict)
    overheads: dict[str, float] = field(default_factory=dict)  # each test's start-up and end

    def add(self, test_id: str, work: EpochWork, seconds: float, peak: float | None = None) -> None:
        _, _, total, count = self.observed.get(test_id, (work, peak, 0.0, 0))
        self.observed[test_id] = (work, peak, total + seconds, count + 1)

    def fit(self) -> tuple[float, dict[str, float], float | None] | None:
        """(seconds per step, {model: seconds per FLOP}, seconds per FLOP for a model not seen
        when no peak is known); None before any steady epoch."""
        rows = [(work, peak, total / count) for work, peak, total, count in self.observed.values()]
        if not rows:
            return None
        models = sorted({work.model for work, _, _ in rows})
        # Jointly, when the tests seen determine every coefficient (relative errors weighed alike).
        x = np.array([[work.steps / y] + [work.flops / y if work.model == m else 0.0 for m in models]
                      for work, _, y in rows])
        joint = _nonnegative_fit(x)
        if joint is not None:
            rates = dict(zip(models, joint[1:], strict=True))
            return joint[0], rates, float(np.median(joint[1:]))
        # Else each step costs what its test's time leaves over the peak's time for its FLOPs
        # (nothing is left to steps without a peak), and each model's FLOPs the rest.
        per_step = float(np.median([max(0.0, y - (work.flops / peak if peak else y)) / work.steps
                                    for work, peak, y in rows]))
        rates = {m: float(np.median([max(0.0, y - per_step * work.steps) / work.flops
                                     for work, _, y in rows if work.model == m])) for m in models}
        return per_step, rates, float(np.median(list(rates.values())))

    def epoch_seconds(self, work: EpochWork, peak: float | None = None, seen_only: bool = False) -> float | None:
        """One epoch of `work`; None before any steady epoch, or (`seen_only`) when no test of its
        model has run yet."""
        fitted = self.fit()
        if fitted is None:
            return None
        per_step, rates, unseen = fitted
        if seen_only and work.model not in rates:
            return None
        per_flop = rates.get(work.model, 1 / peak if peak else unseen)
        return per_step * work.steps + per_flop * work.flops

    @property
    def overhead(self) -> float:
        return sum(self.overheads.values()) / len(self.overheads) if self.overheads else 0.0


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
    None when this process cannot know the session's tests (one of several pytest-xdist workers)."""

    write: Callable[[str], None]
    pending: dict[str, Pending] | None = None
    prefix: str = ""
    clock: Callable[[], float] = time.perf_counter
    pace: Pace = field(default_factory=Pace)
    _seconds: float = field(default=0.0, init=False)  # wall time of the epochs reported so far
    _epochs: int = field(default=0, init=False)
    _last_end: float | None = field(default=None, init=False)  # when the last epoch reported ended
    _began: bool = field(default=False, init=False)  # whether a test of this process has trained

    def test(self, test_id: str, epochs: int, metric: str = "accuracy") -> Callable[[Epoch], None]:
        """The callback for one test's epochs (the runner's `on_epoch`); `metric` names the workload's."""
        started = self.clock() if self._last_end is None else self._last_end
        last = self.clock()
        first = last  # when its first epoch ended
        done = 0
        label = test_id.rsplit("::", 1)[-1]
        if self.pending is not None and not self._began and test_id in self.pending:
            # Tests run in the collection's order: those before this process's first ran in a
            # worker that crashed (an isolated session's new worker collects them all again).
            for earlier in list(self.pending)[:list(self.pending).index(test_id)]:
                del self.pending[earlier]
        self._began = True
        pending = self.pending.get(test_id, Pending(epochs)) if self.pending is not None else Pending(epochs)
        work, peak = pending.work, pending.peak

        def on_epoch(epoch: Epoch) -> None:
            nonlocal last, first, done
            now = self.clock()
            gap = now - last
            last, done = now, done + 1
            self._seconds += gap
            self._epochs += 1
            if done == 1:
                first = now
                fitted = self.pace.epoch_seconds(work, peak, seen_only=True) if work is not None else None
                per_epoch = fitted if fitted is not None else gap * (work.trainings if work is not None else 1)
            else:
                per_epoch = (now - first) / (done - 1)  # the steady pace: a twin's turns average out
                if work is not None:
                    self.pace.add(test_id, work, gap, peak)
                if done == 2 or done == epochs:  # start-up, tracing, the wait before: past the steady pace
                    self.pace.overheads[test_id] = max(0.0, now - started - done * per_epoch)
            self._last_end = now
            left = [f"~{duration((epochs - done) * per_epoch)} test"]
            if self.pending is not None:
                left.append(f"~{duration((epochs - done) * per_epoch + self.later(test_id))} session")
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
            per_epoch = self.pace.epoch_seconds(pending.work, pending.peak) if pending.work is not None else None
            total += pending.epochs * (mean_epoch if per_epoch is None else per_epoch) + self.pace.overhead
        return total

    def finished(self, test_id: str) -> None:
        """A test ended (passed, failed or skipped): its epochs no longer count as to do."""
        if self.pending is not None:
            self.pending.pop(test_id, None)
