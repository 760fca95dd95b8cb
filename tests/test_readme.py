"""The README's example benchmark and its A/B recipes work as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, SHARED_CACHE, throwaway_checkout

# Whole pytest sessions: the end-to-end tier (pytest tests -m e2e).
pytestmark = pytest.mark.e2e


def readme_example() -> str:
    section = (ROOT / "README.md").read_text().split("## Your own benchmark, in your own repository", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run_outside(example: str, *options: str) -> subprocess.CompletedProcess:
    """`pytest benchmarks/test_my_regressor.py --profile smoke --devices cpu` in a repository of
    the user's own, outside this checkout: only the installed plugin, no conftest.py."""
    project = Path(tempfile.mkdtemp(prefix="fitbench-readme-example-"))
    try:
        (project / "benchmarks").mkdir()
        (project / "benchmarks" / "test_my_regressor.py").write_text(example)
        clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
        return subprocess.run([sys.executable, "-m", "pytest", *SHARED_CACHE,
                               "benchmarks/test_my_regressor.py", "--profile", "smoke", "--devices", "cpu", *options],
                              cwd=project, env=clean, capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(project)


def test_the_readme_example_benchmark_runs_outside_the_checkout():
    run = run_outside(readme_example())
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 1 deselected" in run.stdout  # units-16 is not in the smoke subset
    assert "1 case is not in the smoke profile's subset" in run.stdout
    row = next(line for line in run.stdout.splitlines() if line.startswith("my_regressor "))
    assert "units-64" in row and "<=60.000" in row  # the summary row: MAE against its target
    # From the session's worker (crash isolation, the default), on stderr.
    assert "test_my_regressor[cpu-units-64] epoch 15/15:" in run.stderr and ", mae " in run.stderr


def test_the_readme_example_with_a_learning_rate_far_too_high_stops_at_epoch_1_as_diverged():
    adam = '{"class_name": "Adam", "config": {"learning_rate": 0.05}}'
    example = readme_example()
    assert adam in example
    run = run_outside(example.replace(adam, '{"class_name": "SGD", "config": {"learning_rate": 1e4}}'))
    assert run.returncode == 1, run.stdout + run.stderr
    line = next(line for line in run.stdout.splitlines() if "diverged at epoch" in line)
    assert line.startswith("diverged at epoch 1: loss "), line
    assert "epoch 2/15" not in run.stdout


def readme_ab_commands() -> list[str]:
    """The `fitbench ab` command lines of the README's A/B section, in order."""
    section = (ROOT / "README.md").read_text().split("## Did this change make training slower?", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.startswith("fitbench ab ")]


SAMPLE_SELECTION = ("tests/sample/bench_tiny.py -o python_files=bench_*.py --profile smoke --devices cpu --offline "
                    "--require-data --data-dir {data}")


def as_run_here(command: str, data: Path) -> str:
    """The README's command with this test's stand-ins: the tiny sample benchmark on synthetic
    data for the selection after --, this venv for both Pythons (so an environment variable
    makes the environment difference), a 30-second budget for the 20 (one round), and one
    round for the default three (what several rounds do is tested in test_ab.py), two with
    --explain (its explanation pools each side's sessions)."""
    head, _, _ = command.partition(" -- ")
    head = re.sub(r"(--(?:base|candidate)-python) \S+", rf"\1 {sys.executable}", head)
    if "--base-python" in head:
        head += " --candidate-env FITBENCH_README_SIDE=candidate"
    head = head.replace("--budget 20m", "--budget 30s")
    if "--budget" not in head and "--rounds" not in head:
        head += " --rounds 2" if "--explain" in head else " --rounds 1"
    threads = re.findall(r"--threads \d+", command.partition(" -- ")[2])  # how the sides train: kept
    return f"{head} -- {SAMPLE_SELECTION.format(data=data)}{''.join(' ' + t for t in threads)}"


def test_the_readme_has_its_three_ab_recipes():
    commands = readme_ab_commands()
    assert [c.split(" -- ")[0].split()[2] for c in commands] == ["--base", "--base", "--base-python"]


@pytest.mark.parametrize("number", [0, 1, 2], ids=["explain", "pull-request", "environments"])
def test_the_readme_ab_recipes_run_as_written(number, tmp_path, synthetic_data_dir):
    command = readme_ab_commands()[number]
    repo = throwaway_checkout(tmp_path / "repo")  # a repository with main and origin/main
    summary = tmp_path / "summary.md"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env = {**clean, "GITHUB_STEP_SUMMARY": str(summary), "PATH": f"{Path(sys.executable).parent}:{clean['PATH']}"}
    run = subprocess.run(as_run_here(command, synthetic_data_dir), shell=True, cwd=repo, env=env,
                         capture_output=True, text=True, timeout=900)
    # 0 or 1: the same code on both sides, so the verdict is the gate's (a false alarm is
    # possible at its alpha); 2 would mean the recipe itself cannot run.
    assert run.returncode in (0, 1), command + "\n" + run.stdout + run.stderr
    assert "test_tiny[cpu]" in run.stdout and "runs and verdicts in" in run.stdout
    if "--explain" in command.split(" -- ")[0]:  # under the verdicts, the profiled steps compared
        # Every round profiled, each side's sessions pooled: each line against their spread.
        why = run.stdout.split("why (2 rounds' profiled steps, base -> candidate):\n", 1)[1]
        assert why.startswith("test_tiny[cpu]: step ") and "2 + 2 sessions, 80 + 80 profiled steps" in why, run.stdout
    if "GITHUB_STEP_SUMMARY" in command:
        assert "## fitbench gate" in summary.read_text()  # the pull-request recipe's job summary
    if "--base-python" in command:
        assert "FITBENCH_README_SIDE=candidate" in run.stdout  # the environment form names the difference
        assert "round 1:" in run.stdout
    if "--threads 1" in command:  # both sides trained with one thread, and their records say so
        for side in ("base", "candidate"):
            (path,) = repo.glob(f".benchmarks/ab/*/{side}-1.json")
            assert json.loads(path.read_text())["benchmarks"][0]["extra_info"]["measurement"]["threads"] == 1


def test_the_readme_compare_and_gate_recipe_runs_as_written(tmp_path, synthetic_data_dir):
    section = (ROOT / "README.md").read_text().split("## Comparing saved runs and gating", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    assert [c.split()[:2] for c in commands] == [["pytest", "benchmarks"]] * 2 + [["fitbench", "compare"],
                                                                                  ["pytest", "benchmarks"],
                                                                                  ["fitbench", "report"]]
    repo = throwaway_checkout(tmp_path / "repo")
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env = {**clean, "PATH": f"{Path(sys.executable).parent}:{clean['PATH']}"}
    selection = SAMPLE_SELECTION.format(data=synthetic_data_dir).replace(" --profile smoke", "")
    for command in commands:
        # The tiny sample benchmark on synthetic data stands in for the suite.
        pytest = f"{sys.executable} -m pytest {shlex.join(SHARED_CACHE)}"
        here = command.replace("pytest benchmarks", f"{pytest} {selection}")
        run = subprocess.run(here, shell=True, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        assert run.returncode in (0, 1), command + "\n" + run.stdout + run.stderr  # 1: a verdict, not an error
    assert (repo / "reports" / "report.md").exists()
