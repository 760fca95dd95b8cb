"""Live progress: a line per epoch as it ends, with the time left for the test and the session.

The runner calls back between rounds (never inside a timed epoch); a line costs a string format
and a write. Time left for the test is its remaining epochs at the pace of its last epoch
(training and validation); for the session, the epochs of the tests still to run at the
session's average pace so far: a rough figure (models differ in cost), marked with "~".
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fitbench.compare.record import Epoch


def duration(seconds: float) -> str:
    """'45 s', '2 min 05 s', '1 h 02 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass
class Progress:
    """The session's progress. `pending` maps each test not yet finished to its epoch count;
    None when this process cannot know the session's tests (a pytest-xdist worker)."""

    write: Callable[[str], None]
    pending: dict[str, int] | None = None
    prefix: str = ""
    clock: Callable[[], float] = time.perf_counter
    _seconds: float = field(default=0.0, init=False)  # wall time of the epochs reported so far
    _epochs: int = field(default=0, init=False)

    def test(self, test_id: str, epochs: int, metric: str = "accuracy") -> Callable[[Epoch], None]:
        """The callback for one test's epochs (the runner's `on_epoch`); `metric` names the workload's."""
        last = self.clock()
        done = 0
        label = test_id.rsplit("::", 1)[-1]

        def on_epoch(epoch: Epoch) -> None:
            nonlocal last, done
            now = self.clock()
            pace = now - last
            last, done = now, done + 1
            self._seconds += pace
            self._epochs += 1
            left = [f"~{duration((epochs - done) * pace)} test"]
            if self.pending is not None:
                later = sum(count for test, count in self.pending.items() if test != test_id)
                left.append(f"~{duration((epochs - done) * pace + later * self._seconds / self._epochs)} session")
            val = "" if math.isnan(epoch.val_metric) else f", val {epoch.val_metric:.3f}"
            tracing = " (tracing included)" if done == 1 else ""
            self.write(f"{self.prefix}{label} epoch {done}/{epochs}: {epoch.seconds:.3f} s{tracing}, "
                       f"loss {epoch.loss:.4f}, {metric} {epoch.metric:.3f}{val}; left {', '.join(left)}")

        return on_epoch

    def finished(self, test_id: str) -> None:
        """A test ended (passed, failed or skipped): its epochs no longer count as to do."""
        if self.pending is not None:
            self.pending.pop(test_id, None)
