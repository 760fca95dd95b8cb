"""`fitbench bisect`: which commit, or which environment, made training slower?

Two forms, one search:

* *Commits:* `fitbench bisect GOOD BAD -- <pytest arguments>` drives `git bisect` in a
  temporary worktree of its own (the user's checkout and its bisect state are left alone).
  Each step checks out git's midpoint there and runs a `fitbench ab` of that commit (the
  candidate, the worktree itself) against GOOD (the base, a second worktree) on the
  selection, taking turns as `fitbench ab` does.
* *Environments:* `fitbench bisect --python-versions PY0 PY1 ... PYn -- <pytest arguments>`:
  the same search over an ordered list of Pythons (one venv per TensorFlow nightly, say),
  PY0 good and PYn bad, each step an A/B of the midpoint's Python against PY0's on the same
  code.

A step is *bad* when the gate calls a regression in epoch time (any benchmark, or all
benchmarks together), *good* when it does not. An inconclusive step counts as good and says
so: a slowdown the size of the one being hunted is called in two rounds (docs/gating.md), and
a smaller one is not what the search is for. A step whose candidate could not be measured
(no results, a failed or missing benchmark) is skipped (`git bisect skip`) and named.
`--budget` bounds the whole search: a step starts only if it fits, and a search cut short
names the range that is left.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fitbench.cli import ab
from fitbench.cli.common import write_json
from fitbench.compare import gate
from fitbench.core.options import GateSettings

GOOD, BAD, SKIP = "good", "bad", "skip"
# In the output of a search (or of history's confirmations): its A/B folders are steps, not nights
# against a reference, and `fitbench history` does not read them as such.
STEPS_MARKER = "fitbench-steps.txt"


@dataclass
class Step:
    """One A/B of the search."""

    number: int
    tested: str  # a commit (its sha) or a Python
    label: str  # what a user recognises: 'abc1234 subject' or the Python's path
    result: str  # good, bad or skip
    why: str  # the verdict in one line, or why it was skipped
    ratio: float = math.nan
    ratio_low: float = math.nan
    ratio_high: float = math.nan
    seconds: float = 0.0
    output: str = ""
    explanation: list[str] = field(default_factory=list)  # --explain: the step's profiles compared

    def describe(self) -> str:
        return f"step {self.number}: {self.label}: {self.result.upper()}: {self.why} ({self.seconds / 60:.1f} min)"


@dataclass
class Search:
    """What the search found: the first bad commit or environment, or the range left."""

    first_bad: str = ""
    first_bad_label: str = ""
    candidates: list[str] = field(default_factory=list)  # when skips or the budget leave several
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = ""  # why it ended without a single answer

    def culprit_step(self) -> Step | None:
        return next((s for s in self.steps if s.tested == self.first_bad and s.result == BAD), None)

    def describe(self) -> list[str]:
        took = f"{len(self.steps)} step{'s' if len(self.steps) != 1 else ''} in {self.seconds / 60:.1f} min"
        if self.first_bad:
            step = self.culprit_step()
            figure = (f"epoch time x{step.ratio:.3f} [{step.ratio_low:.3f}, {step.ratio_high:.3f}] against good"
                      f" (step {step.number})" if step and math.isfinite(step.ratio)
                      else "not measured itself (it is the bad end you gave)")
            why = [f"  {line}" for line in step.explanation] if step else []
            return [f"first bad: {self.first_bad_label}: {figure}; {took}", *why]
        lines = [f"no single first bad: {self.stopped}; {took}"]
        lines += [f"  could be: {label}" for label in self.candidates]
        return lines

    def as_dict(self) -> dict:
        return {"first_bad": self.first_bad, "first_bad_label": self.first_bad_label,
                "candidates": self.candidates, "stopped": self.stopped, "seconds": round(self.seconds, 1),
                "steps": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                           for k, v in asdict(step).items()} for step in self.steps]}


def judge(comparison: gate.Comparison) -> tuple[str, str, gate.Verdict | None]:
    """(good/bad/skip, the reason in one line, the verdict that decided)."""
    broken = [v for v in comparison.verdicts if v.verdict in (gate.FAILED, gate.MISSING)]
    if broken:
        return SKIP, "not measured: " + "; ".join(f"{v.name} {v.verdict}" for v in broken[:3]), None
    every = ([comparison.overall] if comparison.overall else []) + comparison.verdicts
    measured = [v for v in every if v.method]
    slower = [v for v in measured if v.time == gate.REGRESSION]
    if slower:
        return BAD, _figure(slower[0], "regression"), slower[0]
    if not measured:
        return SKIP, "nothing comparable was measured", None
    shown = measured[0]
    if shown.time == gate.INCONCLUSIVE:
        return GOOD, _figure(shown, "inconclusive, counted as good: no regression found"), shown
    return GOOD, _figure(shown, shown.time), shown


def _figure(verdict: gate.Verdict, what: str) -> str:
    return (f"{verdict.name}: epoch time x{verdict.ratio:.3f} [{verdict.ratio_low:.3f}, "
            f"{verdict.ratio_high:.3f}], {what}")


class Bisector:
    """Runs the A/B steps of a search; `step` is what each form calls (see the module docstring)."""

    def __init__(self, pytest_args: Sequence[str], output: Path, settings: GateSettings, rounds: int | None,
                 budget: float | None, say: Callable[[str], None] = print,
                 timeout: float = 1800.0, join_timeout: float = 600.0, explain_steps: int = 0):
        self.pytest_args, self.output, self.settings = list(pytest_args), output, settings
        self.explain_steps = explain_steps
        self.rounds, self.budget, self.say = rounds, budget, say
        self.timeout, self.join_timeout = timeout, join_timeout
        self.started = time.monotonic()
        self.longest = 0.0
        self.search = Search()

    def room_for_a_step(self) -> bool:
        if self.budget is None:
            return True
        return time.monotonic() - self.started + self.longest <= self.budget

    def step(self, tested: str, label: str, cwd: Path, base: str | None = None,
             base_python: str | None = None, candidate_python: str | None = None,
             candidate: str | None = None, until: float | None = None) -> Step:
        """One A/B of `tested` (the candidate: `candidate`, else the working tree at `cwd`) against
        `base`; `until`: instead of fixed rounds, rounds until decided within that many seconds."""
        number = len(self.search.steps) + 1
        out = self.output / f"step-{number}"
        out.mkdir(parents=True, exist_ok=True)
        (self.output / STEPS_MARKER).write_text("The A/B steps of fitbench bisect or fitbench history --confirm: "
                                                "fitbench history does not read them as nights.\n")
        began = time.monotonic()
        self.say(f"step {number}: {label}")
        explanation: list[str] = []
        try:
            plan = ab.plan(base, candidate, base_python, candidate_python, [], [], self.pytest_args, str(out),
                           None if until else self.rounds, f"{until:.0f}s" if until else None, "alternate", cwd,
                           explain_steps=self.explain_steps)
            outcome = ab.AB(plan, self.settings, say=lambda line: self.say("  " + line),
                            timeout=self.timeout, join_timeout=self.join_timeout).run()
        except (ab.ABError, gate.MachineMismatch, gate.SoftwareMismatch, gate.NothingComparable,
                ValueError) as error:
            result, why, verdict = SKIP, f"could not be measured: {str(error).splitlines()[0]}", None
        else:
            if outcome.interrupted or outcome.comparison is None:
                raise KeyboardInterrupt
            result, why, verdict = judge(outcome.comparison)
            write_json(out / "verdicts.json", outcome.comparison.as_dict())
            explanation = self.explain(outcome, out) if self.explain_steps else []
        seconds = time.monotonic() - began
        self.longest = max(self.longest, seconds)
        step = Step(number, tested, label, result, why, seconds=seconds, output=str(out))
        step.explanation = explanation
        if verdict is not None:
            step.ratio, step.ratio_low, step.ratio_high = verdict.ratio, verdict.ratio_low, verdict.ratio_high
        self.search.steps.append(step)
        self.say(step.describe())
        return step

    def explain(self, outcome: ab.Outcome, out: Path) -> list[str]:
        """The step's profiles compared (kept in its explanations.json), as lines."""
        from fitbench.compare import explain

        try:
            explanations, notes = ab.explain_outcome(outcome)
        except explain.ExplainError as error:
            return [f"no explanation: {error}"]
        lines = [*notes, *(line for e in explanations for line in e.text())]
        write_json(out / "explanations.json", {"notes": notes, "explanations": [e.as_dict() for e in explanations]})
        return lines

    def finish(self) -> Search:
        self.search.seconds = time.monotonic() - self.started
        return self.search


def bisect_commits(bisector: Bisector, good: str, bad: str, cwd: Path) -> Search:
    """git bisect between GOOD and BAD in a worktree of its own; each midpoint an A/B against GOOD."""
    top = Path(ab.git(cwd, "rev-parse", "--show-toplevel"))
    subfolder = Path(cwd.resolve()).relative_to(top.resolve())
    good_sha, bad_sha = ab.resolve_ref(top, good), ab.resolve_ref(top, bad)
    if good_sha == bad_sha:
        raise ab.ABError(f"{good} and {bad} are the same commit; give a good commit and a later bad one")
    if ab.git(top, "merge-base", good_sha, bad_sha) != good_sha:
        raise ab.ABError(f"{good} is not an ancestor of {bad}; give the good (older) commit first")
    worktree = Path(tempfile.mkdtemp(prefix="fitbench-bisect-"))
    ab.git(top, "worktree", "add", "--detach", "--force", str(worktree), bad_sha)
    search = bisector.search
    try:
        said = _bisect(worktree, "start", bad_sha, good_sha)
        while not _first_bad(said):
            if _only_skipped(said):
                search.candidates = _skipped_candidates(worktree, said)
                search.stopped = "only skipped commits are left"
                break
            if not bisector.room_for_a_step():
                search.candidates = _labels(worktree, _left(worktree))
                search.stopped = f"the budget leaves no room for another step ({len(search.candidates)} commits left)"
                break
            sha = ab.git(worktree, "rev-parse", "HEAD")
            step = bisector.step(sha, _label(worktree, sha), worktree / subfolder, base=good_sha)
            said = _bisect(worktree, step.result, sha)
        else:
            search.first_bad = _first_bad(said)
            search.first_bad_label = _label(worktree, search.first_bad)
    finally:
        try:
            ab.git(worktree, "bisect", "reset", "--quiet")
        except ab.ABError:
            pass
        try:
            ab.git(top, "worktree", "remove", "--force", str(worktree))
        except ab.ABError as error:
            bisector.say(f"fitbench bisect: could not remove the worktree {worktree}: {error}")
    return bisector.finish()


def bisect_pythons(bisector: Bisector, pythons: Sequence[str], cwd: Path) -> Search:
    """The same search over an ordered list of environments: the first is good, the last bad."""
    if len(pythons) < 2:
        raise ab.ABError("--python-versions: give at least two Pythons, the good one first and the bad one last")
    resolved = [ab.check_python(p, "--python-versions") for p in pythons]
    good, bad = 0, len(resolved) - 1
    skipped: set[int] = set()
    search = bisector.search
    while True:
        untested = [i for i in range(good + 1, bad) if i not in skipped]
        if not untested:
            break
        if not bisector.room_for_a_step():
            search.stopped = f"the budget leaves no room for another step ({bad - good} environments left)"
            break
        middle = (good + bad) / 2
        index = min(untested, key=lambda i: (abs(i - middle), i))
        step = bisector.step(resolved[index], pythons[index], cwd, base_python=resolved[0],
                             candidate_python=resolved[index])
        if step.result == SKIP:
            skipped.add(index)
        elif step.result == BAD:
            bad = index
        else:
            good = index
    if not search.stopped and not any(i in skipped for i in range(good + 1, bad)):
        search.first_bad, search.first_bad_label = resolved[bad], pythons[bad]
    else:
        search.stopped = search.stopped or "only skipped environments are left"
        search.candidates = [pythons[i] for i in range(good + 1, bad + 1)]
    return bisector.finish()


def _bisect(worktree: Path, *args: str) -> str:
    """`git bisect ARGS`' output; git exits 2 when only skipped commits are left, which is an answer."""
    done = subprocess.run(["git", "-C", str(worktree), "bisect", *args], capture_output=True, text=True)
    said = done.stdout + done.stderr
    if done.returncode and not _only_skipped(said):
        raise ab.ABError(f"git bisect {' '.join(args)}: {said.strip() or f'exit {done.returncode}'}")
    return said


def _first_bad(said: str) -> str:
    match = re.search(r"^([0-9a-f]{40}) is the first bad commit", said, re.MULTILINE)
    return match.group(1) if match else ""


def _only_skipped(said: str) -> bool:
    return "only 'skip'ped commits left" in said


def _skipped_candidates(worktree: Path, said: str) -> list[str]:
    return _labels(worktree, re.findall(r"^([0-9a-f]{40})$", said, re.MULTILINE))


def _left(worktree: Path) -> list[str]:
    """The commits the first bad one can still be: reachable from the bad end, from no good one."""
    goods = ab.git(worktree, "for-each-ref", "--format=%(refname)", "refs/bisect/good-*").split()
    return ab.git(worktree, "rev-list", "refs/bisect/bad", "--not", *goods).split()


def _labels(worktree: Path, shas: Sequence[str]) -> list[str]:
    return [_label(worktree, sha) for sha in shas]


def _label(worktree: Path, sha: str) -> str:
    return ab.git(worktree, "log", "-1", "--format=%h %s", sha)
