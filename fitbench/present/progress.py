"""Live progress: a line per epoch as it ends, with the time left for the test and the session.

The runner calls back between rounds (never inside a timed epoch); a line costs a string format
and a write. A variant's twin (its f32 reference, trained in turns with it) calls back too,
without a line: its epochs are trainings done. Time left for the test is its trainings left
(its own epochs and its twin's) at its mean pace per training since its first epoch (training
and validation; the two take turns in alternating order, so the gaps between the variant's
lines alternate between one training and three, and only counting both is right at each line).
After the first epoch, which a twin has not trained yet, the pace fitted for its model when one
is known, else that epoch for each training left. For the session, each test still to run costs
its epochs times what one of its epochs computes (optimizer steps and FLOPs,
`fitbench.measure.flops.EpochWork`, as an earlier session's record of it gave them) at the pace
measured so far (`Pace`: a cost per step, and per FLOP for each model seen, a model not seen yet
at its device's matmul peak), so that a CNN after MLPs, or batch 32 after batch 512, is not
taken at the wrong pace. Each test also costs the start-up and end seen so far (building,
tracing, the final evaluation: a test's wall time beyond its trainings at its steady pace,
measured when it ends, and provisionally after its second epoch). A test whose work is unknown
counts the session's mean epoch. A rough figure, marked with "~".
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fitbench.core.record import Epoch
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
    """Seconds per epoch as a x steps + c x FLOPs, from the tests seen so far (each test's steady
    epoch, from its mean pace since its first epoch): `a` is one step's overhead, shared; `c` a
    model's seconds per FLOP. A model already seen has its own `c` (a CNN runs its FLOPs many
    times faster than a small MLP does); a model not seen yet is taken at its device's matmul
    peak, the rate a large model nears (tests of small models cost mostly steps). Plus each
    test's start-up and end beyond its steady epochs, on average."""

    observed: dict[str, tuple[EpochWork, float | None, float]] = field(default_factory=dict)
    overheads: dict[str, float] = field(default_factory=dict)  # each test's start-up and end

    def observe(self, test_id: str, work: EpochWork, seconds: float, peak: float | None = None) -> None:
        """`test_id`'s steady epoch of `work` so far is `seconds` (replacing what it said before)."""
        self.observed[test_id] = (work, peak, seconds)

    def fit(self) -> tuple[float, dict[str, float], float | None] | None:
        """(seconds per step, {model: seconds per FLOP}, seconds per FLOP for a model not seen
        when no peak is known); None before any steady epoch."""
        rows = list(self.observed.values())
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

    def test(self, test_id: str, epochs: int, metric: str = "accuracy") -> TestProgress:
        """The callback for one test's epochs (the runner's `on_epoch`); `metric` names the workload's."""
        started = self.clock() if self._last_end is None else self._last_end
        if self.pending is not None and not self._began and test_id in self.pending:
            # Tests run in the collection's order: those before this process's first ran in a
            # worker that crashed (an isolated session's new worker collects them all again).
            for earlier in list(self.pending)[:list(self.pending).index(test_id)]:
                del self.pending[earlier]
        self._began = True
        pending = self.pending.get(test_id, Pending(epochs)) if self.pending is not None else Pending(epochs)
        return TestProgress(self, test_id, epochs, metric, pending, started)

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


class TestProgress:
    """One test's progress: called with each of its epochs (a line each), and `twin` with each of
    its twin's (no line; a training done)."""

    __test__ = False  # not a pytest test class

    def __init__(self, session: Progress, test_id: str, epochs: int, metric: str, pending: Pending,
                 started: float):
        self.session, self.test_id, self.epochs, self.metric = session, test_id, epochs, metric
        self.work, self.peak = pending.work, pending.peak
        self.trainings = self.work.trainings if self.work is not None else 1
        self.label = test_id.rsplit("::", 1)[-1]
        self.started = started
        self.last = self.first = session.clock()  # the last line's time; the first epoch's end
        self.done = 0  # the test's own epochs ended
        self.twin_done = 0  # its twin's

    def twin(self, epoch: Epoch) -> None:
        """One of the twin's epochs ended."""
        self.twin_done += 1
        self.session._last_end = self.session.clock()

    def __call__(self, epoch: Epoch) -> None:
        session, work = self.session, self.work
        now = session.clock()
        gap = now - self.last
        self.last, self.done = now, self.done + 1
        session._seconds += gap
        session._epochs += 1
        if self.done == 1:
            self.first = now
            fitted = session.pace.epoch_seconds(work, self.peak, seen_only=True) if work is not None else None
            per_training = gap if fitted is None else fitted / self.trainings
        else:
            # Every training since the first epoch's end: the test's own and its twin's.
            per_training = (now - self.first) / (self.done - 1 + self.twin_done)
            if work is not None:
                session.pace.observe(self.test_id, work, per_training * self.trainings, self.peak)
            if self.done == 2 or self.done == self.epochs:  # start-up, tracing, the wait before
                trained = self.done + self.twin_done
                session.pace.overheads[self.test_id] = max(0.0, now - self.started - trained * per_training)
        session._last_end = now
        test_left = (self.epochs * self.trainings - self.done - self.twin_done) * per_training
        left = [f"~{duration(test_left)} test"]
        if session.pending is not None:
            left.append(f"~{duration(test_left + session.later(self.test_id))} session")
        val = "" if math.isnan(epoch.val_metric) else f", val {epoch.val_metric:.3f}"
        tracing = " (tracing included)" if self.done == 1 else ""
        session.write(f"{session.prefix}{self.label} epoch {self.done}/{self.epochs}: {epoch.seconds:.3f} s{tracing}, "
                      f"loss {epoch.loss:.4f}, {self.metric} {epoch.metric:.3f}{val}; left {', '.join(left)}")
