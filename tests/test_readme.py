"""The README's "Adding a benchmark" example works as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import ROOT, run_pytest, throwaway_checkout


def readme_example() -> str:
    section = (ROOT / "README.md").read_text().split("## Adding a benchmark for your own model", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_benchmark_runs(synthetic_data_dir):
    # Inside the checkout, so that its conftest.py (the plugin and fixtures) applies, as it
    # would to a file a user adds to benchmarks/.
    directory = Path(tempfile.mkdtemp(prefix=".readme-example-", dir=ROOT))
    try:
        (directory / "test_my_cnn.py").write_text(readme_example())
        run = run_pytest(str(directory / "test_my_cnn.py"), "--profile", "smoke", "--devices", "cpu", "--offline",
                         "--require-data", "--data-dir", str(synthetic_data_dir))
    finally:
        shutil.rmtree(directory)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 1 deselected" in run.stdout  # filters-8 is not in the smoke subset
    assert "1 case is not in the smoke profile's subset" in run.stdout
    assert "my_cnn             filters-32" in run.stdout  # the summary row
    assert "test_my_cnn[cpu-filters-32] epoch 6/6:" in run.stdout  # the live progress


def readme_ab_commands() -> list[str]:
    """The `fitbench ab` command lines of the README's A/B section, in order."""
    section = (ROOT / "README.md").read_text().split("### Did this change make training slower?", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.startswith("fitbench ab ")]


SAMPLE_SELECTION = ("tests/sample/bench_tiny.py -o python_files=bench_*.py --profile smoke --devices cpu --offline "
                    "--require-data --data-dir {data}")


def as_run_here(command: str, data: Path) -> str:
    """The README's command with this test's stand-ins: the tiny sample benchmark on synthetic
    data for the selection after --, this venv for both Pythons (so an environment variable
    makes the environment difference), and a 30-second budget for the 20 (one round)."""
    head, _, _ = command.partition(" -- ")
    head = re.sub(r"(--(?:base|candidate)-python) \S+", rf"\1 {sys.executable}", head)
    if "--base-python" in head:
        head += " --candidate-env FITBENCH_README_SIDE=candidate"
    head = head.replace("--budget 20m", "--budget 30s")
    return f"{head} -- {SAMPLE_SELECTION.format(data=data)}"


def test_the_readme_ab_recipes_run_as_written(tmp_path, synthetic_data_dir):
    commands = readme_ab_commands()
    assert [c.split(" -- ")[0].split()[2] for c in commands] == ["--base", "--base", "--base-python"]
    repo = throwaway_checkout(tmp_path / "repo")  # a repository with main and origin/main
    summary = tmp_path / "summary.md"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env = {**clean, "GITHUB_STEP_SUMMARY": str(summary), "PATH": f"{Path(sys.executable).parent}:{clean['PATH']}"}
    for command in commands:
        run = subprocess.run(as_run_here(command, synthetic_data_dir), shell=True, cwd=repo, env=env,
                             capture_output=True, text=True, timeout=900)
        # 0 or 1: the same code on both sides, so the verdict is the gate's (a false alarm is
        # possible at its alpha); 2 would mean the recipe itself cannot run.
        assert run.returncode in (0, 1), command + "\n" + run.stdout + run.stderr
        assert "test_tiny[cpu]" in run.stdout and "runs and verdicts in" in run.stdout
    assert "## fitbench gate" in summary.read_text()  # the pull-request recipe's job summary
    assert "FITBENCH_README_SIDE=candidate" in run.stdout  # the environment form names the difference
    assert "round 1:" in run.stdout
