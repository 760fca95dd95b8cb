"""`fitbench ab`: its checks, its sequential test's false-alarm rate under optional stopping,
and both forms run end to end (two versions of the code in git worktrees; two environments)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fitbench import cli
from fitbench.cli import ab
from fitbench.cli.common import DEFAULT_AB_ROUNDS
from fitbench.compare import gate
from fitbench.core import stats
from tests.helpers import ROOT, SAMPLE_ARGS, fitbench_cli, throwaway_checkout

# --- checks before anything runs ------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("20m", 1200), ("1h30m", 5400), ("90s", 90), ("600", 600),
                                           ("1.5m", 90)])
def test_budgets_read_as_durations(text, seconds):
    assert ab.parse_duration(text) == seconds


@pytest.mark.parametrize("arguments, message", [
    ({}, "nothing to compare: give --base REF"),
    ({"base": "no-such-branch"}, "'no-such-branch' names no commit"),
    ({"base": "merge-base:no-such-remote/main"}, "no merge base of HEAD and 'no-such-remote/main'"),
    ({"base": "HEAD", "pytest_args": ["benchmarks", "-n", "2"]}, "drop -n"),
    ({"base": "HEAD", "pytest_args": ["benchmarks", "--benchmark-json=x.json"]}, "drop --benchmark-json"),
    ({"base": "HEAD", "pytest_args": ["benchmarks", "--benchmark-autosave"]}, "drop --benchmark-json"),
    ({"base_python": "/no/such/python", "candidate_python": sys.executable}, "--base-python /no/such/python: "
                                                                              "no such executable"),
    ({"candidate_env": ["NOT AN ASSIGNMENT"]}, "--candidate-env 'NOT AN ASSIGNMENT': give NAME=VALUE"),
    ({"base": "HEAD", "budget": "soon"}, "--budget 'soon': give a duration"),
    ({"base": "HEAD", "rounds": 0}, "--rounds 0: give 1 or more"),
    ({"base": "HEAD", "rounds": 3, "budget": "20m"}, "give --rounds .* or --budget .*, not both"),
])
def test_a_request_that_cannot_run_is_refused_in_one_line_naming_the_fix(arguments, message):
    request = {"base": None, "candidate": None, "base_python": None, "candidate_python": None, "base_env": [],
               "candidate_env": [], "pytest_args": ["benchmarks"], "output": None, "rounds": None, "budget": None,
               "order": "alternate", "cwd": ROOT, **arguments}
    with pytest.raises(ab.ABError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ab.plan(**request)


def test_an_output_folder_that_cannot_be_made_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("")
    monkeypatch.chdir(ROOT)
    output = tmp_path / "a-file" / "out"
    assert cli.main(["ab", "--candidate-env", "X=1", "--output", str(output), "--", "benchmarks"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"fitbench ab: --output {output}: cannot create it (") and "give a folder" in line


def test_by_default_two_rounds_and_each_side_measures_its_own_peak():
    plan = ab.plan(None, None, None, None, [], ["X=1"], ["benchmarks"], None, None, None, "alternate", ROOT)
    assert plan.rounds == DEFAULT_AB_ROUNDS == 2 and plan.budget is None
    assert plan.pytest_args == ["benchmarks", "-rs", "--remeasure-peak"]  # -rs: skip reasons in the logs


def test_a_python_without_pytest_benchmark_is_named(tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    with pytest.raises(ab.ABError, match="cannot import pytest and pytest-benchmark"):
        ab.check_python(str(venv / "bin" / "python"), "--candidate-python")


def test_keeping_the_rounds_data_is_allowed():
    plan = ab.plan(None, None, None, None, [], ["A=1"], ["benchmarks", "--benchmark-save-data"], None, 1, None,
                   "alternate", ROOT)
    assert plan.pytest_args == ["benchmarks", "--benchmark-save-data", "-rs", "--remeasure-peak"]
    assert plan.sides[1].env == {"A": "1"}


def test_the_command_line_without_pytest_arguments_says_what_to_add():
    run = fitbench_cli("ab", "--base", "HEAD", cwd=ROOT)
    assert run.returncode == 2 and "give the pytest arguments after --" in run.stderr


# --- the group-sequential test: valid however the rounds stop -------------------------------------

def looks(mu: float, sd: float, rng: np.random.Generator, planned: int, alpha: float = 0.05,
          per_round: int = 11, session_sd: float = 0.026, threshold: float = math.log(1.05),
          heavy: bool = False, spend: bool = True) -> str:
    """One `fitbench ab --budget` of `planned` rounds in simulation: rounds of pairs sharing their
    session's offset, a look with the gate's interleaved test after each from the second on (at
    the level of one of the looks with `spend`, as gate.looked makes it), until decided or the
    rounds are spent."""
    differences: list[float] = []
    every = max(1, planned - 1) if spend else 1
    for rounds in range(1, planned + 1):
        noise = rng.standard_t(3, per_round) * sd / math.sqrt(3) if heavy else rng.normal(0, sd, per_round)
        differences += list(mu + rng.normal(0, session_sd) + noise)
        if rounds == 1 and planned > 1:
            continue  # no verdict from one round
        shift, test = stats.fold_session(stats.paired_log_shift([1.0] * len(differences), list(np.exp(differences)),
                                                                1 - 2 * stats.look_level(alpha, every)),
                                          rounds, session_sd)
        (_, p_regression, p_improvement, _, _) = gate.looked(
            (shift, test.p_greater(threshold), test.p_less(-threshold), "", 0.0), every, alpha)
        if p_regression < alpha:
            return "regression"
        if p_improvement < alpha:
            return "improvement"
        if -threshold < shift.low and shift.high < threshold:
            return "no change"
    return "undecided"


@pytest.mark.parametrize("heavy", [False, True], ids=["normal", "heavy-tailed"])
def test_stopping_at_the_first_decision_keeps_the_false_alarm_rate_at_alpha(heavy):
    """A true slowdown of exactly the threshold (5%): calling it a regression is a false alarm.
    Looking after every round of 11 pairs from the second, up to 7 rounds, stopping at the first
    decision."""
    rng = np.random.default_rng(20261203)
    trials = 400
    verdicts = [looks(math.log(1.05), 0.08, rng, planned=7, heavy=heavy) for _ in range(trials)]
    false_alarms = verdicts.count("regression") / trials
    # alpha is 0.05; 400 trials put the 99% upper bound of a binomial(400, 0.05) at 0.075.
    assert false_alarms <= 0.075, false_alarms
    # The same test at alpha at every look (nothing spent per look) cries wolf more often.
    naive = [looks(math.log(1.05), 0.08, rng, planned=7, heavy=heavy, spend=False) for _ in range(trials)]
    assert naive.count("regression") / trials > false_alarms, (naive.count("regression"), false_alarms)


def test_three_rounds_decide_an_unchanged_pair_and_a_planted_slowdown():
    """3 rounds of 11 pairs (what a 20-minute budget holds for 6 smoke benchmarks on this
    project's VM), a per-pair sd of 5% and a session spread of 1.5%: unchanged code is mostly
    called no change and a 12% slowdown a regression. (With the session spread of 2.6% that
    the VM showed, fewer are decided: the session term, not the pairs, sets the width.)"""
    rng = np.random.default_rng(7)
    assert [looks(0.0, 0.05, rng, planned=3, session_sd=0.015) for _ in range(100)].count("no change") >= 75
    assert [looks(math.log(1.12), 0.05, rng, planned=3, session_sd=0.015)
            for _ in range(100)].count("regression") >= 75
    unchanged = [looks(0.0, 0.05, rng, planned=3) for _ in range(100)]
    assert "regression" not in unchanged and "improvement" not in unchanged


# --- both forms, end to end ----------------------------------------------------------------------

@pytest.mark.e2e
def test_two_versions_of_the_code_each_run_their_own_fitbench_and_a_changed_model_is_judged(
        tmp_path, synthetic_data_dir):
    repo = tmp_path / "repo"
    throwaway_checkout(repo)
    sample = repo / "tests" / "sample" / "bench_tiny.py"
    sample.write_text(sample.read_text().replace('"units": (16,)', '"units": (16, 16)'))  # the candidate adds a layer
    out = tmp_path / "out"
    run = fitbench_cli("ab", "--base", "HEAD", "--rounds", "1", "--explain", "10", "--output", str(out),
                       "--markdown", str(tmp_path / "summary.md"), "--", *SAMPLE_ARGS,
                       "--data-dir", str(synthetic_data_dir), cwd=repo)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    assert "base: HEAD (" in run.stdout and "candidate: the working tree (" in run.stdout
    assert "+ uncommitted changes" in run.stdout
    # Compared, not incomparable: the model is the code under test, and the verdict names the change.
    assert "INCOMPARABLE" not in run.stdout
    assert "the model changed: workload.model_args.units: [16] != [16, 16], parameters 12,730 -> 13,002" \
        in run.stdout, run.stdout
    assert "the model changed" in (tmp_path / "summary.md").read_text()
    # --explain: each side profiled 10 steps after its schedule; the work the model added is named.
    why = run.stdout.split("why (round 1's profiled steps, base -> candidate):\n", 1)[1]
    assert why.startswith("test_tiny[cpu]: step ") and "10 + 10 profiled steps" in why, run.stdout
    assert "more work: FLOPs per sample x" in why
    assert "### Why" in (tmp_path / "summary.md").read_text()
    assert json.loads((out / "explanations.json").read_text())["explanations"][0]["name"] == "test_tiny[cpu]"
    for side in ("base", "candidate"):  # the profiler's files, for TensorBoard or Perfetto
        assert list((out / "profiles" / side).rglob("*.xplane.pb")), side
    base, candidate = (json.loads((out / f"{side}-1.json").read_text()) for side in ("base", "candidate"))
    # Each side imported its own fitbench: the base from its worktree, the candidate from the repository.
    assert base["fitbench"]["package"] != str(repo / "fitbench")
    assert base["fitbench"]["package"].endswith("/fitbench") and "fitbench-ab-base-" in base["fitbench"]["package"]
    assert candidate["fitbench"]["package"] == str((repo / "fitbench").resolve())
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert verdicts["rounds"] == 1 and len(verdicts["runs"]["base"]) == 1
    # The worktree is gone.
    listed = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout
    assert len(listed.strip().splitlines()) == 1 and not Path(base["fitbench"]["package"]).exists()


@pytest.mark.e2e
def test_a_selection_that_matches_nothing_is_one_line_and_exit_2(synthetic_data_dir):
    run = fitbench_cli("ab", "--candidate-env", "X=1", "--rounds", "1", "--", *SAMPLE_ARGS, "--data-dir",
                       str(synthetic_data_dir), "-k", "nomatch", cwd=ROOT, timeout=300)
    assert run.returncode == 2, run.stdout + run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("fitbench ab: the base session collected no test (pytest's exit 5)") or \
        line.startswith("fitbench ab: the candidate session collected no test (pytest's exit 5)"), line
    assert "-k nomatch" in line


@pytest.mark.e2e
def test_two_environments_with_a_planted_slowdown_is_a_regression(tmp_path, synthetic_data_dir):
    """The environment form with one venv twice and an environment difference: the candidate's
    session plants a 100% slowdown in every timed epoch."""
    out = tmp_path / "out"
    # Two rounds (the default): one round's 7 pairs beside the rest of the suite were too few once.
    run = fitbench_cli("ab", "--base-python", sys.executable, "--candidate-python", sys.executable,
                       "--candidate-env", "PYTEST_ADDOPTS=-p tests.plugins.slowdown --plant-slowdown 1.0",
                       "--output", str(out), "--json", str(tmp_path / "verdicts.json"),
                       "--", *SAMPLE_ARGS, "--data-dir", str(synthetic_data_dir), cwd=ROOT)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "PYTEST_ADDOPTS=-p tests.plugins.slowdown --plant-slowdown 1.0" in run.stdout  # the header names it
    verdicts = json.loads((tmp_path / "verdicts.json").read_text())
    (tiny,) = verdicts["verdicts"]
    assert tiny["verdict"] == "regression" and tiny["ratio"] > 1.5
    assert "FAILED (gate) test_tiny[cpu]: regression" in run.stdout


def test_the_side_that_starts_first_alternates_round_by_round(tmp_path, monkeypatch):
    """Round 1 starts the side drawn (here: the candidate), round 2 the other; each side's
    results, statuses and logs stay its own whatever its place in the ring."""
    from fitbench.processes import turns
    from tests.helpers import interleaved_runs

    rings = []
    for number in (1, 2):
        (tmp_path / f"r{number}").mkdir()
        rings.append(interleaved_runs(tmp_path / f"r{number}", 1.0, seed=number, ring=f"ring-{number}"))
    started: list[list[str]] = []

    class FakeDriver:
        def __init__(self, commands, directory, **options):
            self.commands, self.interrupted = commands, False

        def run(self):
            started.append(["candidate" if "PLANTED=1" in c else "base" for c in self.commands])
            base_json, cand_json = rings[len(started) - 1]
            for command in self.commands:
                out = command.rsplit("--benchmark-json ", 1)[1]
                shutil.copy(cand_json if "PLANTED=1" in command else base_json, out.strip("'"))
            return [turns.Outcome(c, status=3 if "PLANTED=1" in c else 0) for c in self.commands]

    monkeypatch.setattr(turns, "Driver", FakeDriver)
    plan = ab.plan(None, None, None, None, [], ["PLANTED=1"], ["benchmarks"], str(tmp_path / "out"), 2, None,
                   "alternate", ROOT)
    plan.first_side = "candidate"
    said: list[str] = []
    outcome = ab.AB(plan, ab_settings(), say=said.append).run()
    assert started == [["candidate", "base"], ["base", "candidate"]]
    assert outcome.statuses == [[0, 3], [0, 3]]  # (base, candidate) in every round
    first, second = (next(line for line in said if line.startswith(f"round {n}: ")) for n in (1, 2))
    assert "candidate started first" in first and "base started first" in second
    assert "base exit 0, candidate exit 3" in second
    assert any(line.startswith("round 2 alone: all benchmarks x") for line in said)
    assert outcome.comparison.verdicts[0].method.startswith(
        "interleaved, signed-rank interval on 22 pairs, 2 session pairs")


def ab_settings():
    from fitbench.compare.gate import default_settings

    return default_settings()


def test_narrowed_keeps_the_selection_and_names_the_undecided_benchmarks():
    args = ["benchmarks", "-k", "batch or cnn", "--profile", "smoke", "-kx"]
    assert ab.narrowed(args, ["test_b[cpu-batch_size-32]", "test_c[cpu]"]) == (
        ["benchmarks", "--profile", "smoke", "-k", "test_b[cpu-batch_size-32] or test_c[cpu]"], " of those only")
    assert ab.narrowed(args, []) == (args, ", of every benchmark")  # only the overall verdict is open
    assert ab.narrowed(args, ["test_d[a b]"])[0] == args  # not a -k name: every benchmark again


def fake_budget_ab(tmp_path, monkeypatch, scale_of) -> tuple[ab.Outcome, list[str], list[str]]:
    """`fitbench ab --budget` over fake rings of t[a], t[b] and t[c] (the candidate's epochs
    `scale_of(round, name)` times the base's), 3 rounds planned; the outcome, each round's
    first command and what was said."""
    from fitbench.processes import turns
    from tests.helpers import interleaved_runs

    commands_seen: list[str] = []

    def round_files(number: int, names: list[str]) -> tuple[Path, Path]:
        directory = tmp_path / f"r{number}"
        merged = {}
        for name in names:
            (directory / name).mkdir(parents=True)
            for side, path in zip(("base", "cand"), interleaved_runs(directory / name, scale_of(number, name),
                                                                      names=(name,), seed=number * 7 + len(name),
                                                                      ring=f"ring-{number}"), strict=True):
                document = json.loads(Path(path).read_text())
                if side in merged:
                    merged[side]["benchmarks"] += document["benchmarks"]
                else:
                    merged[side] = document
        paths = []
        for side in ("base", "cand"):
            paths.append(directory / f"{side}.json")
            paths[-1].write_text(json.dumps(merged[side]))
        return paths[0], paths[1]

    class FakeDriver:
        def __init__(self, commands, directory, **options):
            self.commands, self.interrupted = commands, False

        def run(self):
            commands_seen.append(self.commands[0])
            number = len(commands_seen)
            every = ("t[a]", "t[b]", "t[c]")
            names = [n for n in every if n in self.commands[0]] or list(every)  # else the user's -k t
            base_json, cand_json = round_files(number, names)
            for command in self.commands:
                out = command.rsplit("--benchmark-json ", 1)[1]
                shutil.copy(cand_json if "PLANTED=1" in command else base_json, out.strip("'"))
            return [turns.Outcome(c, status=0) for c in self.commands]

    monkeypatch.setattr(turns, "Driver", FakeDriver)
    monkeypatch.setattr(ab, "planned_rounds", lambda budget, first_round: 2)  # fake rounds take no time
    monkeypatch.setattr(ab, "planned_looks", lambda budget, first_round, quickest: 2)
    plan = ab.plan(None, None, None, None, [], ["PLANTED=1"], ["benchmarks", "-k", "t"], str(tmp_path / "out"),
                   None, "2h", "alternate", ROOT)
    said: list[str] = []
    return ab.AB(plan, ab_settings(), say=said.append).run(), commands_seen, said


def test_a_budget_spends_its_later_rounds_on_the_undecided_benchmarks_only(tmp_path, monkeypatch):
    """Rounds 1 and 2 run everything (no verdict is read from one round); then t[a], 20% slower,
    is decided and t[b] and t[c], 4% slower, are not (neither a regression at 5% nor no change).
    Round 3 runs t[b] and t[c] only, with -k naming them."""
    outcome, commands_seen, said = fake_budget_ab(tmp_path, monkeypatch,
                                                  lambda number, name: 1.2 if name == "t[a]" else 1.04)
    assert "-k t " in commands_seen[1] and "round 1: no verdict read yet; round 2 of every benchmark" in said
    assert "-k 't[a] or" not in commands_seen[2] and "-k 't[b] or t[c]'" in commands_seen[2]
    assert any("another round of those only" in line for line in said)
    verdicts = {v.name: v for v in outcome.comparison.verdicts}
    assert verdicts["t[a]"].time == "regression" and verdicts["t[a]"].candidate_epochs == 22
    assert verdicts["t[b]"].candidate_epochs == verdicts["t[c]"].candidate_epochs == 11 * outcome.rounds == 33
    # Two full rounds fit, and a third of the undecided only: two looks.
    assert any("the budget holds 2 full rounds: verdicts from round 2 on" in line and "up to 2 looks (rounds after "
               "the second run only the undecided benchmarks, and are shorter), each at level 0.0304 (Pocock's "
               "boundary for alpha 0.05)" in line for line in said), said
    assert verdicts["t[a]"].method.startswith("group-sequential, one of at most 2 looks, each at level 0.0304 "
                                              "(Pocock); ")
    assert any("round 3: the 2 looks planned after round 1 are taken (a group-sequential test cannot add looks); "
               "2 undecided" in line for line in said), said
    assert outcome.decided_at["t[a]"] == 2 and "decided at round 2's look" in verdicts["t[a]"].note


def test_a_benchmark_decided_at_a_look_keeps_that_verdict(tmp_path, monkeypatch):
    """t[a] is unchanged and decided *no change* at round 2. Round 3 runs only t[b] and t[c],
    whose sessions then differ by 15%: judged again with that round, t[a]'s interval would take
    the wider session spread of the median benchmark and no longer be *no change*. A group-
    sequential test stopped t[a] at round 2; its verdict is that look's."""
    from fitbench.compare import gate
    from fitbench.compare.results import load_run

    def scale_of(number: int, name: str) -> float:
        return 1.0 if name == "t[a]" else {1: 1.04, 2: 1.04, 3: 0.88}[number]

    outcome, commands_seen, _ = fake_budget_ab(tmp_path, monkeypatch, scale_of)
    assert outcome.rounds == 3 and "-k 't[b] or t[c]'" in commands_seen[2]
    kept = next(v for v in outcome.comparison.verdicts if v.name == "t[a]")
    assert kept.time == "no change" and outcome.decided_at["t[a]"] == 2
    assert kept.candidate_epochs == 22 and "decided at round 2's look" in kept.note
    at_round_two = gate.compare([load_run(p) for p in outcome.runs["base"][:2]],
                                [load_run(p) for p in outcome.runs["candidate"][:2]], ab_settings(), looks=2)
    assert next(v for v in at_round_two.verdicts if v.name == "t[a]").ratio_high == kept.ratio_high
    judged_again = gate.compare([load_run(p) for p in outcome.runs["base"]],
                                [load_run(p) for p in outcome.runs["candidate"]], ab_settings(), looks=2)
    assert next(v for v in judged_again.verdicts if v.name == "t[a]").time != "no change"  # what was kept from


def test_a_budget_holds_the_rounds_its_first_round_says():
    assert ab.planned_rounds(20 * 60, 6 * 60) == 3
    assert ab.planned_rounds(20 * 60, 25 * 60) == 1  # one round, one look at alpha: a fixed-sample test
    # As many looks as the budget holds rounds after the second one, if each ran only the quickest
    # benchmark: 6 full minutes, then 77 s rounds: rounds 2..8, 7 looks.
    assert ab.planned_looks(20 * 60, 6 * 60, 77) == 7
    assert ab.planned_looks(20 * 60, 25 * 60, 60) == 1  # one round alone is one look
    assert ab.planned_looks(20 * 60, 8 * 60, 8 * 60) == 2  # never fewer than the full rounds
    assert ab.planned_looks(60 * 60, 60, 1) == ab.planned_looks(60 * 60, 30, 30) == ab.MAX_LOOKS


def test_a_round_of_fewer_benchmarks_is_expected_shorter_by_their_training_seconds():
    from types import SimpleNamespace

    def run(seconds: dict[str, list[float]]):
        return SimpleNamespace(records=[SimpleNamespace(name=name, epoch_seconds=epochs)
                                        for name, epochs in seconds.items()])

    first = {"cnn": [12.0] + [10.0] * 7, "mlp": [2.0] + [1.0] * 11}  # 82 s and 13 s a side
    runs = {"base": [run(first), run({"mlp": [1.0]})], "candidate": [run(first)]}  # round 1's runs are read
    share = 13 / 95
    assert ab.round_seconds(400.0, runs, ["mlp"]) == pytest.approx(400 * (0.2 + 0.8 * share))
    assert ab.round_seconds(400.0, runs, []) == 400.0  # only the verdict on all: every benchmark again
    assert ab.round_seconds(400.0, runs, ["not-in-round-1"]) == 400.0
    assert ab.quickest_round(400.0, runs) == pytest.approx(400 * (0.2 + 0.8 * share))  # the MLP's alone


def test_a_budget_stops_when_the_round_of_the_undecided_would_not_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(ab, "round_seconds", lambda full_round, runs, names: 3 * 60 * 60)
    outcome, commands_seen, said = fake_budget_ab(tmp_path, monkeypatch,
                                                  lambda number, name: 1.2 if name == "t[a]" else 1.04)
    assert outcome.rounds == 2 and len(commands_seen) == 2
    assert any("round 2: the budget of 120 min 00 s leaves no room for another round (180 min 00 s expected); 2 "
               "undecided" in line for line in said)


def test_a_side_whose_every_test_was_skipped_says_so(tmp_path):
    log = tmp_path / "session-0.log"
    log.write_text("collected 5 items\n\nSKIPPED [5] benchmarks/test_batch_size.py:45: gpu: no GPU visible to "
                   "TensorFlow 2.21.0 (a build without CUDA)\n=========== 5 skipped in 3.21s ===========\n")
    assert ab._all_skipped(log) == ("every selected test was skipped (5 skipped: gpu: no GPU visible to TensorFlow "
                                    "2.21.0 (a build without CUDA))")
    log.write_text("=========== 1 passed, 4 skipped in 3.21s ===========\n")
    assert ab._all_skipped(log) == ""


def test_undecided_benchmarks_on_few_cores_point_to_one_thread_a_side():
    selection = ["benchmarks", "--profile", "smoke"]
    hint = ab.threads_hint(selection, ["test_b[cpu]"], cpus=2)
    assert hint.startswith("fitbench ab: 1 undecided: on 2 shared cores") and "--threads 1 after --" in hint
    assert ab.threads_hint([*selection, "--threads", "1"], ["test_b[cpu]"], cpus=2) == ""  # already one thread
    assert ab.threads_hint(selection, [], cpus=2) == ""  # every benchmark decided
    assert ab.threads_hint(selection, ["test_b[cpu]"], cpus=64) == ""  # a large machine: not the cause


def test_a_sides_own_pythonpath_follows_its_checkout_instead_of_being_dropped(tmp_path, monkeypatch):
    # --candidate-env PYTHONPATH=DIR (a user's plugin or helpers for one side): after the side's
    # own checkout, which comes first so that each side imports its own fitbench.
    monkeypatch.setenv("PYTHONPATH", "/inherited")
    side = ab.Side("candidate", tmp_path, "python", {"PYTHONPATH": "/plugins"})
    own = side.command(["b"], tmp_path / "c.json", Path("."))
    inherited = ab.Side("base", tmp_path, "python").command(["b"], tmp_path / "b.json", Path("."))
    assert f"PYTHONPATH={tmp_path}:/plugins " in own and "/inherited" not in own
    assert f"PYTHONPATH={tmp_path}:/inherited " in inherited
