"""`fitbench history --confirm`: each candidate regression re-measured before it alerts.

Chromium's Pinpoint does not act on a dashboard alert: it re-runs the revisions on both sides of
the suspected step, side by side, and bisects only what it reproduces. Here that is a
`fitbench ab` of the commit of the last run before the step (the base) against the commit of the
first run after it (the candidate), on this machine, now, on the step's benchmark only, for the
rounds asked or until decided within the budget: the drift the two sides share cancels. A
regression confirmed there alerts, and with `--bisect`, `fitbench bisect` between the two
commits names the first bad one. A step whose two sides ran the same commit and software cannot
be a change of the code: it is dismissed without a measurement. A step that cannot be
re-measured here (runs from uncommitted changes, a commit this repository lacks, a software
change) stays an alert, marked unconfirmed: the doubt goes to the user, not away.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fitbench.cli import ab, bisect
from fitbench.compare.history import ChangePoint
from fitbench.core.options import GateSettings

CONFIRMED, NOT_REPRODUCED, UNCONFIRMED = "confirmed", "not reproduced", "unconfirmed"


@dataclass
class Confirmation:
    change: ChangePoint
    status: str  # confirmed, not reproduced or unconfirmed
    why: str  # the re-measured verdict in one line, or why there was none
    output: str = ""  # the A/B's folder
    first_bad: str = ""  # --bisect: the first bad commit's label, or why none was named

    @property
    def alerts(self) -> bool:
        """A confirmed regression, or one that could not be re-measured: the user must look."""
        return self.status in (CONFIRMED, UNCONFIRMED)

    def describe(self) -> list[str]:
        what = f"{self.change.name} ({self.change.measure}, {self.change.before.label} -> {self.change.after.label})"
        lines = [f"{self.status.upper()}: {what}: {self.why}"]
        if self.first_bad:
            lines.append(f"  {self.first_bad}")
        return lines

    def as_dict(self) -> dict:
        return {"benchmark": self.change.after.record.name, "measure": self.change.measure,
                "before": self.change.before.label, "after": self.change.after.label,
                "history_ratio": [self.change.ratio, self.change.low, self.change.high],
                "status": self.status, "why": self.why, "output": self.output, "first_bad": self.first_bad}


def _commit(change: ChangePoint, side: str) -> tuple[str, str]:
    """(the commit of the run on `side` of the step, '' or why it cannot be re-measured)."""
    point = change.before if side == "before" else change.after
    info = point.run.commit_info or {}
    if not info.get("id"):
        return "", f"the run {point.label} does not say which commit it measured"
    if info.get("dirty"):
        return "", f"the run {point.label} measured uncommitted changes, which cannot be checked out again"
    return info["id"], ""


class Confirmer:
    """Re-measures steps one by one within one budget (`fitbench ab` steps of a Bisector)."""

    def __init__(self, pytest_args: Sequence[str], output: Path, settings: GateSettings, rounds: int | None,
                 budget: float | None, cwd: Path, say: Callable[[str], None] = print):
        self.pytest_args, self.output, self.settings = list(pytest_args), output, settings
        self.rounds, self.budget, self.cwd, self.say = rounds, budget, cwd, say
        self.started = time.monotonic()

    def _left(self) -> float | None:
        return None if self.budget is None else self.budget - (time.monotonic() - self.started)

    def _bisector(self, name: str, folder: str) -> bisect.Bisector:
        selection, _ = ab.narrowed(self.pytest_args, [name])
        return bisect.Bisector(selection, self.output / folder, self.settings, self.rounds, self._left(),
                               say=self.say)

    def confirm(self, change: ChangePoint, number: int) -> Confirmation:
        (good, why_not_good), (bad, why_not_bad) = _commit(change, "before"), _commit(change, "after")
        if why_not_good or why_not_bad:
            return Confirmation(change, UNCONFIRMED, why_not_good or why_not_bad)
        if change.software:
            return Confirmation(change, UNCONFIRMED, f"the software changed ({', '.join(change.software)}): "
                                "re-measure the two environments with fitbench ab --base-python ... "
                                "--candidate-python ...")
        if good == bad:
            return Confirmation(change, NOT_REPRODUCED, f"the same commit {good[:8]} and the same software on "
                                "both sides: nothing but the machine changed (machine drift)")
        left = self._left()
        if left is not None and left <= 0:
            return Confirmation(change, UNCONFIRMED, "the budget left no time to re-measure it")
        name = change.after.record.name
        self.say(f"confirming {name}: fitbench ab --base {good[:8]} --candidate {bad[:8]}")
        # Rounds until decided within what the budget leaves, when no rounds were asked.
        until = left if left is not None and self.rounds is None else None
        step = self._bisector(name, f"confirm-{number}").step(bad, bad[:8], self.cwd, base=good, candidate=bad,
                                                              until=until)
        figure = (f"x{step.ratio:.3f} [{step.ratio_low:.3f}, {step.ratio_high:.3f}]"
                  if math.isfinite(step.ratio) else "")
        if step.result == bisect.BAD:
            return Confirmation(change, CONFIRMED, f"re-measured now: {step.why}", step.output)
        if step.result == bisect.SKIP:
            return Confirmation(change, UNCONFIRMED, step.why, step.output)
        return Confirmation(change, NOT_REPRODUCED, f"{figure} (machine drift): re-measured now, {step.why}",
                            step.output)

    def bisect(self, confirmation: Confirmation, number: int) -> None:
        """`fitbench bisect` between the step's two commits: the first bad one, in the confirmation."""
        change = confirmation.change
        (good, _), (bad, _) = _commit(change, "before"), _commit(change, "after")
        bisector = self._bisector(change.after.record.name, f"bisect-{number}")
        try:
            search = bisect.bisect_commits(bisector, good, bad, self.cwd)
        except ab.ABError as error:
            confirmation.first_bad = f"not bisected: {error}"
            return
        if search.first_bad == bad:  # git names the step's own commit without a midpoint to measure
            confirmation.first_bad = f"first bad: {search.first_bad_label} (the commit after the step, confirmed above)"
        else:
            confirmation.first_bad = search.describe()[0]
