"""`fitbench bisect`: the search over commits (git bisect in a worktree of its own) and over
environments, with skips and a budget; and end to end on a repository of 8 commits built here,
one of whose commits plants a slowdown (tests/plugins/slowdown.py)."""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path

import pytest

from fitbench.cli import bisect
from fitbench.compare import gate
from tests.helpers import SAMPLE_ARGS, fitbench_cli, throwaway_checkout

COMMITS = 16
PLANTED = 11  # the 11th commit of 16 plants the slowdown
PLANT = "from tests.plugins.slowdown import plant\n\n\ndef pytest_configure(config):\n    plant({})\n"


def commit(repo: Path, message: str) -> str:
    for command in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message]):
        subprocess.run(["git", *command], cwd=repo, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def planted_history(repo: Path, commits: int = COMMITS, planted: int = PLANTED, slowdown: float = 0.3) -> list[str]:
    """A benchmark project in git, `commits` commits; the `planted`-th adds to its conftest.py a hook that
    slows every epoch."""
    throwaway_checkout(repo)
    shas = [subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                           text=True).stdout.strip()]
    for number in range(2, commits + 1):
        (repo / "CHANGES.txt").open("a").write(f"change {number}\n")
        if number == planted:
            with (repo / "conftest.py").open("a") as conftest:
                conftest.write("\n\n" + PLANT.format(slowdown))
        shas.append(commit(repo, f"change {number}"))
    return shas


def verdict(name: str, time_verdict: str, ratio: float, method: str = "interleaved, signed-rank on 14 pairs",
            kind: str | None = None) -> gate.Verdict:
    return gate.Verdict(name, kind or time_verdict, time=time_verdict, ratio=ratio, ratio_low=ratio * 0.97,
                        ratio_high=ratio * 1.03, method=method)


def comparison(*verdicts: gate.Verdict, overall: gate.Verdict | None = None) -> gate.Comparison:
    return gate.Comparison([], [], 0.05, list(verdicts), "", [], [], overall=overall)


# --- what a step decides ---------------------------------------------------------------------------

def test_a_regression_anywhere_is_bad_and_names_its_figure():
    result, why, decided = bisect.judge(comparison(verdict("a", gate.NO_CHANGE, 1.0),
                                                   verdict("b", gate.REGRESSION, 1.3)))
    assert result == bisect.BAD and decided.name == "b"
    assert why == "b: epoch time x1.300 [1.261, 1.339], regression"


def test_no_regression_is_good_and_an_inconclusive_step_says_it_was_counted_good():
    result, why, _ = bisect.judge(comparison(verdict("a", gate.NO_CHANGE, 1.0),
                                             overall=verdict(gate.OVERALL, gate.NO_CHANGE, 1.01)))
    assert result == bisect.GOOD and why.startswith(f"{gate.OVERALL}: epoch time x1.010")
    result, why, _ = bisect.judge(comparison(verdict("a", gate.INCONCLUSIVE, 1.04)))
    assert result == bisect.GOOD and "inconclusive, counted as good: no regression found" in why


@pytest.mark.parametrize("broken", [gate.FAILED, gate.MISSING])
def test_a_candidate_that_did_not_train_is_skipped(broken):
    result, why, _ = bisect.judge(comparison(verdict("a", gate.REGRESSION, 1.3),
                                             gate.Verdict("b", broken)))
    assert result == bisect.SKIP and why == f"not measured: b {broken}"


# --- the searches, with each step's A/B faked ---------------------------------------------------

class FakeSteps:
    """Stands in for Bisector.step: bad from a given commit (or Python) on, skips on request."""

    def __init__(self, bisector: bisect.Bisector, is_bad, skip=()):
        self.bisector, self.is_bad, self.skip, self.tested = bisector, is_bad, set(skip), []

    def __call__(self, tested, label, cwd, **sides):
        self.tested.append(tested)
        result = bisect.SKIP if tested in self.skip else (bisect.BAD if self.is_bad(tested, cwd) else bisect.GOOD)
        step = bisect.Step(len(self.bisector.search.steps) + 1, tested, label, result, "faked",
                           ratio=1.3 if result == bisect.BAD else 1.0, ratio_low=1.2, ratio_high=1.4)
        self.bisector.search.steps.append(step)
        return step


def bisector(tmp_path: Path, budget: float | None = None) -> bisect.Bisector:
    return bisect.Bisector(["benchmarks"], tmp_path / "out", gate.default_settings(), None, budget,
                           say=lambda line: None)


def planted_in(tested: str, cwd: Path) -> bool:
    return "plant(" in (cwd / "conftest.py").read_text()  # each step runs in the worktree git bisect checked out


def test_git_bisect_finds_the_planted_commit_in_four_steps_and_leaves_the_checkout_alone(tmp_path):
    repo = tmp_path / "repo"
    shas = planted_history(repo)
    searcher = bisector(tmp_path)
    searcher.step = FakeSteps(searcher, planted_in)
    search = bisect.bisect_commits(searcher, shas[0], "main", repo)
    assert search.first_bad == shas[PLANTED - 1]
    assert len(search.steps) <= 5 and search.first_bad_label.endswith(f"change {PLANTED}")
    assert search.describe()[0].startswith(f"first bad: {shas[PLANTED - 1][:7]}")
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, capture_output=True, text=True).stdout  # noqa: E731
    assert len(git("worktree", "list").splitlines()) == 1  # the bisect worktree is gone
    assert git("rev-parse", "--abbrev-ref", "HEAD").strip() == "main" and not git("status", "--porcelain").strip()
    assert "refs/bisect" not in git("for-each-ref")


def test_a_commit_that_cannot_be_measured_is_skipped_and_named(tmp_path):
    repo = tmp_path / "repo"
    shas = planted_history(repo)
    searcher = bisector(tmp_path)
    fake = FakeSteps(searcher, planted_in, skip={shas[PLANTED - 1]})
    searcher.step = fake
    search = bisect.bisect_commits(searcher, shas[0], shas[-1], repo)
    # The planted commit itself was skipped: git cannot tell it from the next one, and says so.
    assert not search.first_bad and search.stopped == "only skipped commits are left"
    assert [c.split()[1:] for c in search.candidates] == [["change", str(PLANTED)], ["change", str(PLANTED + 1)]]
    assert any(step.result == bisect.SKIP for step in search.steps)


def test_the_budget_ends_the_search_and_names_what_is_left(tmp_path):
    repo = tmp_path / "repo"
    shas = planted_history(repo)
    searcher = bisector(tmp_path, budget=10.0)
    fake = FakeSteps(searcher, planted_in)

    def slow_step(*args, **kwargs):
        searcher.longest = 6.0  # each step takes 6 s: a second would not fit in 10
        time.sleep(0.01)
        return fake(*args, **kwargs)

    searcher.step = slow_step
    searcher.started -= 5.0
    search = bisect.bisect_commits(searcher, shas[0], shas[-1], repo)
    assert len(search.steps) == 1 and not search.first_bad
    assert search.stopped.startswith("the budget leaves no room for another step (")
    assert any(c.endswith(f"change {PLANTED}") for c in search.candidates)


@pytest.mark.parametrize("first_bad_day, expected", [(7, "found"), (6, "either day 5 or day 6")])
def test_environments_are_bisected_in_order_around_one_that_fails(tmp_path, first_bad_day, expected):
    pythons = [f"/venvs/tf-nightly-{day}/bin/python" for day in range(1, 10)]  # day 5's cannot run
    searcher = bisector(tmp_path)
    day_of = lambda python: int(python.split("nightly-")[1].split("/")[0])  # noqa: E731
    fake = FakeSteps(searcher, lambda tested, cwd: day_of(tested) >= first_bad_day, skip={pythons[4]})
    searcher.step = fake
    original = bisect.ab.check_python
    bisect.ab.check_python = lambda path, option: path
    try:
        search = bisect.bisect_pythons(searcher, pythons, tmp_path)
    finally:
        bisect.ab.check_python = original
    assert fake.tested[0] == pythons[4] and len(search.steps) <= 4  # tried, skipped, searched around
    if expected == "found":
        assert search.first_bad == pythons[first_bad_day - 1]
    else:  # the skipped day 5 is just before the first bad: either could be it, and it says so
        assert not search.first_bad and search.stopped == "only skipped environments are left"
        assert search.candidates == pythons[4:6]


@pytest.mark.parametrize("arguments, message", [
    (["HEAD"], "give the bad commit after the good one"),
    (["HEAD", "HEAD"], "are the same commit"),
    (["--python-versions", "python3"], "give GOOD and BAD commits, or --python-versions"),
])
def test_a_search_that_cannot_run_is_refused_in_one_line(tmp_path, arguments, message):
    repo = tmp_path / "repo"
    planted_history(repo)
    if arguments == ["--python-versions", "python3"]:
        arguments = ["HEAD~1", "HEAD", *arguments]
    run = fitbench_cli("bisect", *arguments, "--output", str(tmp_path / "out"), "--", "benchmarks", cwd=repo)
    assert run.returncode == 2 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_the_good_commit_must_come_first(tmp_path):
    repo = tmp_path / "repo"
    shas = planted_history(repo)
    run = fitbench_cli("bisect", shas[-1], shas[0], "--", "benchmarks", cwd=repo)
    assert run.returncode == 2 and "is not an ancestor of" in run.stderr


# --- end to end --------------------------------------------------------------------------------

@pytest.mark.e2e
def test_bisect_finds_the_commit_that_planted_a_slowdown(tmp_path, synthetic_data_dir):
    # The wiring end to end: real sessions, taking turns, a verdict a step. 5 commits and a 2x
    # slowdown in the 4th, one round a step (7 pairs tell a 2x slowdown): 2 steps, 4 sessions.
    # (16 commits and 30% at 3 rounds, found in 4 steps, took 10
    # minutes; the search over more commits is tested above with faked steps, and what bisect
    # can resolve on real data is measured in docs/gating.md.)
    repo, planted = tmp_path / "repo", 4
    shas = planted_history(repo, commits=5, planted=planted, slowdown=1.0)
    started = time.monotonic()
    run = fitbench_cli("bisect", shas[0], shas[-1], "--output", str(tmp_path / "out"), "--explain", "10",
                       "--rounds", "1", "--json", str(tmp_path / "bisect.json"), "--",
                       *SAMPLE_ARGS, "--data-dir", str(synthetic_data_dir), cwd=repo, timeout=1500)
    assert run.returncode == 0, run.stdout + run.stderr
    found = json.loads((tmp_path / "bisect.json").read_text())
    assert found["first_bad"] == shas[planted - 1], run.stdout
    assert len(found["steps"]) <= 3
    culprit = next(s for s in found["steps"] if s["tested"] == shas[planted - 1])
    assert culprit["result"] == "bad" and culprit["ratio_low"] > 1.05 and math.isfinite(culprit["ratio"])
    assert f"first bad: {shas[planted - 1][:7]} change {planted}: epoch time x" in run.stdout
    # Each step kept its explanation; the culprit's is printed under it. (The plant sleeps after
    # each epoch's steps, so the profiled steps themselves need not differ.)
    explained = run.stdout.split("first bad: ", 1)[1].splitlines()[1]
    assert explained.startswith("  test_tiny[cpu]: step ") and "10 + 10 profiled steps" in explained, run.stdout
    assert culprit["explanation"][0] == explained.strip()
    assert (Path(culprit["output"]) / "explanations.json").exists()
    print(run.stdout, f"bisect: {len(found['steps'])} steps, {time.monotonic() - started:.0f} s")  # shown with -s
