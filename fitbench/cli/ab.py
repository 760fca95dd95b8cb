"""`fitbench ab`: did this change make training slower? Two versions of the code, or two
environments, measured in one job on one machine, taking turns.

Each side is a pytest session of the same selection: its own checkout (a temporary git
worktree of a ref, or the working tree), its own Python (a venv with another TensorFlow,
Keras, CUDA or driver stack) and its own environment variables. The sides run as one ring
(fitbench.processes.turns): they take turns, one timed epoch each, in an order that alternates every
round, so neither side always follows the other. A round is one ring: both sides run the
whole selection once. The verdicts are `fitbench compare`'s (fitbench.compare.gate), from the epoch
pairs of every round:

* `--rounds N` (default 2): N rounds, then the gate's signed-rank test on the pairs;
* `--budget 20m`: rounds until every benchmark is decided (regression, improvement or no change at
  its threshold) or the budget is spent. Looking again after every round would inflate a fixed-
  sample test's false alarms, so the rounds are the looks of a group-sequential test: the first
  round's duration says how many full rounds the budget holds (R), verdicts are read from round 2
  on (one round cannot tell a session's own speed from a change; R = 1: one look), and there are K
  >= R looks (rounds 2..K + 1: as many as the budget would hold if every round after the second
  ran only the quickest benchmark, `planned_looks`), each at the level of Pocock's constant
  boundary for K looks (`stats.look_level`, `gate.looked`: 0.0122 for alpha 0.05 and 9 looks,
  where Bonferroni's alpha / K is 0.0056); no round runs beyond them. Decisions come from the
  rounds, not the pairs: sessions differ by a few percent each (the session term), so a
  benchmark's interval narrows with more rounds, whatever its number of epochs. A round after the
  second runs only the benchmarks still undecided (`-k` narrowed to their names), so that the
  budget buys rounds where they decide something. A benchmark's verdict is the one of the look
  that decided it: later rounds, which it is not in, would judge it again with other sessions'
  spread and could undo a decision the test already spent its alpha on.

Each side imports its own `fitbench`: its checkout comes first on PYTHONPATH (an editable
install's finder comes after sys.path). Both runs' JSON, each round's session logs and the
verdicts stay in the output directory, for `fitbench report`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fitbench.cli.common import DEFAULT_AB_ROUNDS, DEFAULT_EXPLAIN_ROUNDS, DEFAULT_EXPLAIN_STEPS
from fitbench.compare import gate
from fitbench.compare.results import NotBenchmarkJSON, Run, load_run
from fitbench.core import stats
from fitbench.core.options import GateSettings
from fitbench.processes import turns

NO_TESTS_COLLECTED = 5  # pytest's exit status (pytest.ExitCode; this module does not import pytest)
SIDES = ("base", "candidate")
DECIDED = (gate.REGRESSION, gate.IMPROVEMENT, gate.NO_CHANGE)


class ABError(ValueError):
    """The A/B cannot be run as asked; the message names the problem and the fix."""


@dataclass
class Side:
    """One side of the A/B: where its code is, which Python runs it, what it adds to the environment."""

    name: str  # base or candidate
    checkout: Path  # the checkout's top; the session runs in the same sub-folder as the user
    python: str
    env: dict[str, str] = field(default_factory=dict)
    ref: str = ""  # the git ref asked for ("" for the working tree)
    commit: str = ""  # what it resolved to (the working tree: its HEAD)
    dirty: bool = False  # the working tree has uncommitted changes
    worktree: bool = False  # a temporary worktree, removed at the end

    def describe(self) -> str:
        code = f"{self.ref} ({self.commit[:10]})" if self.ref else "the working tree" + (
            f" ({self.commit[:10]}{' + uncommitted changes' if self.dirty else ''})" if self.commit else "")
        extras = [f"python {self.python}"] + [f"{key}={value}" for key, value in self.env.items()]
        return f"{self.name}: {code}; {', '.join(extras)}"

    def command(self, pytest_args: Sequence[str], json_path: Path, subfolder: Path) -> str:
        """The shell command line of this side's pytest session."""
        # The side's own PYTHONPATH (--candidate-env PYTHONPATH=...) if it has one, else the one
        # inherited, after the checkout.
        inherited = self.env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
        env = {**self.env, "PYTHONPATH": os.pathsep.join([str(self.checkout), *filter(None, [inherited])])}
        assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
        return (f"cd {shlex.quote(str(self.checkout / subfolder))} && env {assignments} "
                f"{shlex.quote(self.python)} -m pytest {shlex.join(pytest_args)} "
                f"--benchmark-json {shlex.quote(str(json_path))}")


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; its output, or ABError with git's own message."""
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode:
        raise ABError(f"git {' '.join(args)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout.strip()


def resolve_ref(repo: Path, ref: str) -> str:
    """The commit `ref` names: a branch, a tag, a commit, or 'merge-base:OTHER' (the merge
    base of HEAD and OTHER, what a pull request is compared with)."""
    if ref.startswith("merge-base:"):
        other = ref.split(":", 1)[1]
        try:
            return git(repo, "merge-base", "HEAD", other)
        except ABError as error:
            raise ABError(f"--base {ref}: no merge base of HEAD and {other!r} ({error}); "
                          "fetch it first (git fetch origin main)") from error
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except ABError as error:
        raise ABError(f"{ref!r} names no commit of {repo}; give a branch, a tag, a commit or "
                      "merge-base:origin/main") from error


def parse_env(assignments: Sequence[str], option: str) -> dict[str, str]:
    env = {}
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ABError(f"{option} {assignment!r}: give NAME=VALUE")
        env[key] = value
    return env


def check_python(path: str, option: str) -> str:
    """The Python at `path`, checked: it exists, runs, and has pytest-benchmark."""
    resolved = path if os.sep in path else (shutil.which(path) or path)
    if not os.path.isfile(resolved) or not os.access(resolved, os.X_OK):
        raise ABError(f"{option} {path}: no such executable; give the python of a venv (for example "
                      ".venv-tf220/bin/python)")
    done = subprocess.run([resolved, "-c", "import pytest_benchmark, pytest"], capture_output=True, text=True)
    if done.returncode:
        raise ABError(f"{option} {path} cannot import pytest and pytest-benchmark "
                      f"({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}); "
                      "install fitbench in that environment (pip install -e .)")
    return resolved


def parse_duration(text: str) -> float:
    """Seconds of '20m', '1h30m', '90s' or '600'."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not match or not any(match.groups()):
        raise ABError(f"--budget {text!r}: give a duration such as 20m, 1h30m or 900s")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass
class Plan:
    """What `fitbench ab` was asked to do, checked."""

    sides: list[Side]
    pytest_args: list[str]
    output: Path
    rounds: int = 1
    budget: float | None = None  # seconds; rounds until decided (sequential)
    order: str = turns.DEFAULT_ORDER
    subfolder: Path = Path(".")  # where the user stands inside the checkout
    first_side: str = ""  # the side that is session 0 in round 1 ("": drawn at random)
    waiting: str = turns.DEFAULT_WAITING  # what the side waiting for its turn does (turns.WAITING)
    explain_steps: int = 0  # every round's sessions profile this many steps per test (--explain)

    def session_args(self, selection: Sequence[str], side: Side, number: int) -> list[str]:
        """A side's pytest arguments in round `number`: with --explain, each round profiles each
        test after its schedule (in the ring's turns) into the output's profiles/<side>/round-N/:
        the sessions' spread is then part of each line's interval (fitbench.compare.explain)."""
        if not self.explain_steps:
            return list(selection)
        return [*selection, "--explain-steps", str(self.explain_steps),
                "--explain-dir", str(self.output / "profiles" / side.name / f"round-{number}")]

    @property
    def expects_software_change(self) -> bool:
        """Two Pythons or two environments: the software difference is the question."""
        base, candidate = self.sides
        return base.python != candidate.python or base.env != candidate.env


def plan(base: str | None, candidate: str | None, base_python: str | None, candidate_python: str | None,
         base_env: Sequence[str], candidate_env: Sequence[str], pytest_args: Sequence[str],
         output: str | None, rounds: int | None, budget: str | None, order: str, cwd: Path,
         waiting: str = turns.DEFAULT_WAITING, explain_steps: int = 0) -> Plan:
    """Check the request and resolve its refs (no worktree is made yet)."""
    args = list(pytest_args)
    if args[:1] == ["pytest"]:  # `-- pytest benchmarks ...` reads naturally too
        args = args[1:]
    if not any(a.startswith("-r") for a in args):
        args.append("-rs")  # each session's log then says why a test was skipped
    if "--remeasure-peak" not in args:
        # Each side measures the matmul peak in its own turn, alone: a peak cached by an earlier
        # session (perhaps beside other work) would make the efficiencies unlike.
        args.append("--remeasure-peak")
    if any(re.fullmatch(r"--benchmark-(json|autosave|save)(=.*)?", a) for a in args):
        raise ABError("fitbench ab writes each side's JSON itself (in --output); drop --benchmark-json, "
                      "--benchmark-save and --benchmark-autosave")
    if any(a.startswith(("--explain-steps", "--explain-dir")) for a in args):
        raise ABError("fitbench ab profiles the sessions itself: give --explain (its steps) before --, not "
                      "--explain-steps or --explain-dir after it")
    if explain_steps < 0 or explain_steps == 1:
        raise ABError(f"--explain {explain_steps}: give the steps to profile per test, 2 or more (default "
                      f"{DEFAULT_EXPLAIN_STEPS} with --explain alone)")
    if any(a == "-n" or a.startswith(("-n=", "--numprocesses")) or re.fullmatch(r"-n\d+", a) for a in args):
        raise ABError("the sides take turns one epoch at a time; pytest-xdist (-n) would train several "
                      "at once: drop -n")
    base_env_vars, candidate_env_vars = parse_env(base_env, "--base-env"), parse_env(candidate_env, "--candidate-env")
    if base is None and candidate is None and base_python is None and candidate_python is None \
            and not base_env_vars and not candidate_env_vars:
        raise ABError("nothing to compare: give --base REF (two versions of the code), or --base-python and "
                      "--candidate-python (two environments), or --base-env/--candidate-env")
    if budget is not None and rounds is not None:
        raise ABError("give --rounds (a fixed number of rounds) or --budget (rounds until decided), not both")
    if rounds is None:
        rounds = DEFAULT_EXPLAIN_ROUNDS if explain_steps else DEFAULT_AB_ROUNDS
    if rounds < 1:
        raise ABError(f"--rounds {rounds}: give 1 or more")
    if order not in turns.ORDERS:
        raise ABError(f"--order {order}: one of {', '.join(turns.ORDERS)}")
    seconds = parse_duration(budget) if budget is not None else None
    python = sys.executable
    pythons = [check_python(p, o) if p else python
               for p, o in ((base_python, "--base-python"), (candidate_python, "--candidate-python"))]
    top, subfolder = cwd, Path(".")
    if base is not None or candidate is not None or _inside_git(cwd):
        top = Path(git(cwd, "rev-parse", "--show-toplevel")) if _inside_git(cwd) else cwd
        if (base is not None or candidate is not None) and not _inside_git(cwd):
            raise ABError(f"--base/--candidate name git refs, but {cwd} is not in a git repository")
        subfolder = Path(os.path.relpath(cwd.resolve(), top.resolve()))
    head = git(top, "rev-parse", "HEAD") if _inside_git(cwd) else ""
    dirty = bool(head) and bool(git(top, "status", "--porcelain", "--untracked-files=no"))
    sides = []
    for name, ref, python_path, env in (("base", base, pythons[0], base_env_vars),
                                        ("candidate", candidate, pythons[1], candidate_env_vars)):
        if ref is None:
            sides.append(Side(name, top, python_path, env, commit=head, dirty=dirty))
        else:
            sides.append(Side(name, top, python_path, env, ref=ref, commit=resolve_ref(top, ref), worktree=True))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(output) if output else cwd / ".benchmarks" / "ab" / stamp
    return Plan(sides, args, out.resolve(), rounds, seconds, order, subfolder, waiting=waiting,
                explain_steps=explain_steps)


def _inside_git(path: Path) -> bool:
    done = subprocess.run(["git", "-C", str(path), "rev-parse", "--is-inside-work-tree"], capture_output=True,
                          text=True)
    return done.returncode == 0 and done.stdout.strip() == "true"


@dataclass
class Outcome:
    """What `fitbench ab` measured."""

    comparison: gate.Comparison | None
    rounds: int
    seconds: float
    statuses: list[list[int | None]]  # per round: (base, candidate) exit statuses
    interrupted: bool = False
    undecided: list[str] = field(default_factory=list)  # names still inconclusive at the budget
    decided_at: dict[str, int] = field(default_factory=dict)  # name -> the round whose look decided it
    runs: dict[str, list[str]] = field(default_factory=dict)  # side -> its JSON files


class AB:
    """Runs a plan: worktrees, rounds of turns, verdicts (see the module docstring)."""

    def __init__(self, plan: Plan, settings: GateSettings, say: Callable[[str], None] = print,
                 timeout: float = turns.DEFAULT_TIMEOUT, join_timeout: float = turns.DEFAULT_JOIN_TIMEOUT):
        self.plan, self.settings, self.say = plan, settings, say
        self.timeout, self.join_timeout = timeout, join_timeout
        if plan.expects_software_change and not settings.compare_software:
            # Two environments: the software difference is the question, compared across.
            self.settings = GateSettings(**{**settings.__dict__, "compare_software": True})
        self.worktrees: list[Path] = []

    def run(self) -> Outcome:
        plan = self.plan
        try:
            plan.output.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ABError(f"--output {plan.output}: cannot create it ({error.strerror or error}); give a folder "
                          "you can write") from error
        try:
            self._make_worktrees()
            for side in plan.sides:
                self.say(f"fitbench ab: {side.describe()}")
            how = (f"rounds until decided, budget {_duration(plan.budget)}" if plan.budget
                   else f"{plan.rounds} round{'s' if plan.rounds > 1 else ''}")
            self.say(f"fitbench ab: pytest {shlex.join(plan.pytest_args)}; {how}; turns in {plan.order} order, "
                     f"the waiting side {plan.waiting}; "
                     f"results in {plan.output}")
            return self._rounds()
        finally:
            self._remove_worktrees()

    def _make_worktrees(self) -> None:
        for side in self.plan.sides:
            if side.worktree:
                directory = Path(tempfile.mkdtemp(prefix=f"fitbench-ab-{side.name}-"))
                git(side.checkout, "worktree", "add", "--detach", "--force", str(directory), side.commit)
                self.worktrees.append(directory)
                side.checkout = directory

    def _remove_worktrees(self) -> None:
        for directory in self.worktrees:
            try:
                git(directory, "worktree", "remove", "--force", str(directory))
            except ABError as error:
                self.say(f"fitbench ab: could not remove the worktree {directory}: {error}")

    def _rounds(self) -> Outcome:
        plan, started = self.plan, time.monotonic()
        runs: dict[str, list[Run]] = {name: [] for name in SIDES}
        statuses: list[list[int | None]] = []
        comparison, longest, looks, planned = None, 0.0, 1, 1
        kept: dict[str, tuple[int, gate.Verdict]] = {}  # name -> (round, verdict) of the look that decided it
        # Which side is session 0 (started first, first in the ring's first round): drawn for the
        # first round, then alternated, so that nothing tied to a session's place favours one side.
        base_first = self.plan.first_side == "base" if self.plan.first_side else random.random() < 0.5
        selection = list(plan.pytest_args)
        for number in range(1, 10_000):
            round_started = time.monotonic()
            paths = {name: plan.output / f"{name}-{number}.json" for name in SIDES}
            order = list(plan.sides) if base_first == (number % 2 == 1) else list(reversed(plan.sides))
            commands = [side.command(plan.session_args(selection, side, number), paths[side.name], plan.subfolder)
                        for side in order]
            logs = plan.output / f"round-{number}"
            driver = turns.Driver(commands, logs, timeout=self.timeout, join_timeout=self.join_timeout,
                                  order=plan.order, waiting=plan.waiting)
            ended = dict(zip((side.name for side in order), driver.run(), strict=True))
            outcomes = [ended[name] for name in SIDES]
            statuses.append([o.status for o in outcomes])
            longest = max(longest, time.monotonic() - round_started)
            self.say(f"round {number}: " + ", ".join(
                f"{name} {ended[name].describe(0).split(': ', 1)[1]}" for name in SIDES)
                     + f" ({time.monotonic() - round_started:.0f} s; {order[0].name} started first; logs in {logs})")
            if driver.interrupted:
                return self._outcome(comparison, runs, statuses, started, interrupted=True)
            for name in SIDES:
                if ended[name].status == NO_TESTS_COLLECTED:
                    raise ABError(f"the {name} session collected no test (pytest's exit {NO_TESTS_COLLECTED}): the "
                                  "selection after -- matches nothing; check its paths and -k "
                                  f"({shlex.join(plan.pytest_args)})")
                try:
                    runs[name].append(load_run(paths[name]))
                except NotBenchmarkJSON as error:
                    log = logs / f"session-{[side.name for side in order].index(name)}.log"
                    skipped = _all_skipped(log)
                    if skipped:
                        raise ABError(f"the {name} session trained nothing: {skipped}; nothing to compare. Select "
                                      f"tests that run here (its output: {log})") from error
                    raise ABError(f"the {name} session wrote no results ({error}); its output: {log}\n"
                                  + _tail(log)) from error
            if plan.budget is not None and number == 1:
                first_round = time.monotonic() - started
                planned = planned_rounds(plan.budget, first_round)
                looks = planned_looks(plan.budget, first_round, quickest_round(first_round, runs))
                self.say(f"round 1: {_duration(first_round)}; "
                         + _budget_plan(planned, looks, self.settings.alpha))
            comparison = gate.compare(runs["base"], runs["candidate"], self.settings, looks=looks)
            if plan.budget is not None or plan.rounds > 1:
                self.say(f"round {number} alone: {self._round_alone(runs, number)}")
            if plan.budget is None:
                if number >= plan.rounds:
                    break
                continue
            if number == 1 and planned > 1:
                self.say("round 1: no verdict read yet; round 2 of every benchmark")
                continue
            comparison = kept_decisions(comparison, kept, number)
            undecided = _undecided(comparison)
            elapsed = time.monotonic() - started
            if not undecided:
                self.say(f"round {number}: every benchmark decided")
                break
            names = [name for name in undecided if name != gate.OVERALL]
            next_round = round_seconds(longest, runs, names)
            stop = _no_more_rounds(number, looks, plan.budget, elapsed, next_round)
            if stop:
                self.say(f"round {number}: {stop}; {len(undecided)} undecided")
                break
            selection, only = narrowed(plan.pytest_args, names)
            self.say(f"round {number}: {len(undecided)} undecided ({', '.join(undecided[:3])}"
                     f"{', ...' if len(undecided) > 3 else ''}); another round{only}")
        outcome = self._outcome(comparison, runs, statuses, started)
        if comparison is not None and plan.budget is not None:
            outcome.undecided = _undecided(comparison)
            outcome.decided_at = {name: number for name, (number, _) in kept.items()}
        return outcome

    def _round_alone(self, runs: dict[str, list[Run]], number: int) -> str:
        """One round's verdict on all benchmarks by itself: rounds that disagree more than their
        intervals allow show a per-session effect (the pooled verdict averages it out)."""
        try:
            alone = gate.compare(runs["base"][number - 1:number], runs["candidate"][number - 1:number],
                                 self.settings).overall
        except (gate.MachineMismatch, gate.SoftwareMismatch, gate.NothingComparable):
            alone = None
        if alone is None:
            return "no verdict on all benchmarks"
        return f"all benchmarks x{alone.ratio:.3f} [{alone.ratio_low:.3f}, {alone.ratio_high:.3f}]"

    def _outcome(self, comparison: gate.Comparison | None, runs: dict[str, list[Run]],
                 statuses: list[list[int | None]], started: float, interrupted: bool = False) -> Outcome:
        return Outcome(comparison, len(statuses), time.monotonic() - started, statuses, interrupted,
                       runs={name: [run.path for run in side_runs] for name, side_runs in runs.items()})


def explain_outcome(outcome: Outcome) -> tuple[list, list[str]]:
    """Every round's profiles of the two sides compared (`--explain`; fitbench.compare.explain):
    the explanations and what keeps the sides from being alike; ExplainError says why none."""
    from fitbench.compare import explain

    try:
        base, candidate = ([load_run(path) for path in outcome.runs[side]] for side in SIDES)
    except (NotBenchmarkJSON, IndexError, KeyError) as error:
        raise explain.ExplainError(f"the rounds' runs cannot be read ({error})") from error
    return explain.explain_runs(base, candidate)


def planned_rounds(budget: float, first_round: float) -> int:
    """How many full rounds a budget holds, from the first round's duration: fixed before any
    verdict is read, as a group-sequential test needs (`planned_looks`)."""
    return max(1, int(budget // max(first_round, 1e-9)))


def _budget_plan(planned: int, looks: int, alpha: float) -> str:
    if planned <= 1:
        return "the budget holds no second round: one look, at alpha"
    return (f"the budget holds {planned} full rounds: verdicts from round 2 on (one round cannot tell a session's "
            f"own speed from a change), up to {looks} looks (rounds after the second run only the undecided "
            f"benchmarks, and are shorter), each at level {stats.look_level(alpha, looks):.4f} (Pocock's boundary "
            f"for alpha {alpha:g})")


def _no_more_rounds(number: int, looks: int, budget: float, elapsed: float, next_round: float) -> str:
    """Why no round follows round `number`, or '' when one does."""
    if number >= (looks + 1 if looks > 1 else 1):  # looks at rounds 2..K + 1; one look: round 1 alone
        return f"the {looks} looks planned after round 1 are taken (a group-sequential test cannot add looks)"
    if elapsed + next_round > budget:
        return f"the budget of {_duration(budget)} leaves no room for another round ({_duration(next_round)} expected)"
    return ""


# Looks cost little each (Pocock's level for alpha 0.05: 0.0122 at 9 looks, 0.0084 at 20, 0.0063 at
# 40) but are integrated one by one; more than this many would need rounds of under 30 s in 20 min.
MAX_LOOKS = 40


def planned_looks(budget: float, first_round: float, quickest: float) -> int:
    """The looks of a budget whose first round took `first_round` seconds: one per round from
    the second on, as many as the budget would hold if every round after the second (a full one)
    ran only the benchmark whose round is `quickest`: rounds of the undecided benchmarks only are
    shorter than a full round, so the budget, not the looks, should end the rounds. At least one
    per full round the budget holds, at most MAX_LOOKS; one when only one round fits (a
    fixed-sample test). Fixed before any verdict is read; a look not taken only lowers the
    false-alarm rate below alpha."""
    planned = planned_rounds(budget, first_round)
    if planned <= 1:
        return 1
    after_second = int(max(0.0, budget - 2 * first_round) // max(quickest, 1e-9))
    return min(MAX_LOOKS, max(planned, 1 + after_second))


def quickest_round(full_round: float, runs: dict[str, list[Run]]) -> float:
    """The expected duration of the shortest round there can be: one of a single benchmark."""
    names = {record.name for side_runs in runs.values() if side_runs for record in side_runs[0].records}
    return min((round_seconds(full_round, runs, [name]) for name in names), default=full_round)


# The share of a round that does not shrink with fewer benchmarks (the sessions' start,
# collection, data, the summary): 7% on this project's one-thread smoke ring (a round of all
# six benchmarks 384 s, of two 77 s; docs/gating.md), taken as 20% to err long.
ROUND_FIXED_SHARE = 0.2


def round_seconds(full_round: float, runs: dict[str, list[Run]], names: Sequence[str]) -> float:
    """The expected duration of a round of the benchmarks `names` (all of them when empty): a
    full round's, scaled by their share of the first round's training seconds (every epoch, both
    sides) beyond the part of a round that does not shrink."""
    busy: dict[str, float] = {}
    for run in (side_runs[0] for side_runs in runs.values() if side_runs):
        for record in run.records:
            busy[record.name] = busy.get(record.name, 0.0) + sum(record.epoch_seconds)
    total = sum(busy.values())
    if not names or total <= 0 or any(name not in busy for name in names):
        return full_round
    share = sum(busy[name] for name in names) / total
    return full_round * (ROUND_FIXED_SHARE + (1 - ROUND_FIXED_SHARE) * share)


def narrowed(pytest_args: Sequence[str], names: Sequence[str]) -> tuple[list[str], str]:
    """The selection of the next round: the user's, with `-k` narrowed to the undecided
    benchmarks `names`; and what to tell the user about it. Every benchmark runs again when
    only the verdict on all of them is undecided, or when a name cannot be a -k keyword."""
    keyword = re.compile(r"[\w:+.\[\]\\/-]+")  # what pytest's -k takes as one name
    if not names or not all(keyword.fullmatch(name) for name in names):
        return list(pytest_args), ", of every benchmark"
    args, skip = [], False
    for arg in pytest_args:  # the user's -k goes: the names are a subset of what it selected
        if skip:
            skip = False
        elif arg == "-k":
            skip = True
        elif not arg.startswith("-k"):
            args.append(arg)
    return [*args, "-k", " or ".join(names)], f" of {'it' if len(names) == 1 else 'those'} only"


def kept_decisions(comparison: gate.Comparison, kept: dict[str, tuple[int, gate.Verdict]],
                   number: int) -> gate.Comparison:
    """The comparison of round `number`'s look with every verdict an earlier look decided put
    back as it was then (a group-sequential test stops a benchmark at its decision), and this
    look's new decisions added to `kept`."""
    def settled(verdict: gate.Verdict) -> gate.Verdict:
        if verdict.name in kept:
            return kept[verdict.name][1]
        if verdict.method and verdict.time in DECIDED:
            decided = copy.deepcopy(verdict)
            decided.note = "; ".join(filter(None, [decided.note, f"decided at round {number}'s look"]))
            kept[verdict.name] = (number, decided)
            return decided
        return verdict

    verdicts = [settled(v) for v in comparison.verdicts]
    overall = settled(comparison.overall) if comparison.overall else kept.get(gate.OVERALL, (0, None))[1]
    return dataclasses.replace(comparison, verdicts=verdicts, overall=overall)


def threads_hint(pytest_args: Sequence[str], undecided: Sequence[str], cpus: int | None) -> str:
    """What to try when benchmarks stayed undecided with TensorFlow's default thread pools on a
    machine of few cores ('' otherwise): there a session's own speed, not the pairs, bounds the
    intervals, and one thread per pool makes sessions alike (docs/gating.md)."""
    if not undecided or any(arg.startswith("--threads") for arg in pytest_args) or (cpus or 0) > 8:
        return ""
    return (f"fitbench ab: {len(undecided)} undecided: on {cpus or 'a few'} shared core{'s' if cpus != 1 else ''}, "
            "sessions with TensorFlow's default thread pools run a few percent faster or slower than "
            "each other; --threads 1 after -- makes them alike, and verdicts decide in fewer rounds "
            "(it measures one-thread training)")


def _undecided(comparison: gate.Comparison) -> list[str]:
    """Benchmarks (and the overall verdict) whose epoch time is not yet decided."""
    every = [v for v in comparison.verdicts if v.method] + ([comparison.overall] if comparison.overall else [])
    return [v.name for v in every if v.time not in DECIDED]


def _all_skipped(log: Path) -> str:
    """'every selected test was skipped (3 skipped: gpu: no GPU visible ...)' when pytest's
    summary line says only skips, else ''."""
    text = _tail(log, 40)
    summary = re.findall(r"=+ (\d+ skipped[^=]*?) in [\d.]+s", text)
    if not summary or re.search(r"\d+ (passed|failed|error)", summary[-1]):
        return ""
    reasons = re.findall(r"SKIPPED \[\d+\] [^:]+:\d+: (.*)", text)
    return f"every selected test was skipped ({summary[-1]}{': ' + reasons[0] if reasons else ''})"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"
