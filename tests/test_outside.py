"""fitbench as a user gets it: the built wheel in a fresh environment, and a project of their
own outside this checkout (tests/outside: a regression gated on MAE, a binary classifier gated
on AUC, each with its data from a function). Smoke runs twice, saves, compares and reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

# Whole pytest sessions: the end-to-end tier (pytest tests -m e2e).
pytestmark = pytest.mark.e2e

PROJECT = ROOT / "tests" / "outside"
# Each benchmark of the project: the metric it checks and its goal.
CHECKED = {
    "test_diabetes[cpu]": ("mae", "<="), "test_cancer[cpu-units-8]": ("auc", ">="),
    "test_cancer[cpu-units-32]": ("auc", ">="), "test_cancer_two_inputs[cpu]": ("auc", ">="),
    "test_digits[cpu-filters-8]": ("top2", ">="), "test_digits[cpu-filters-32]": ("top2", ">="),
    "test_sequences[cpu]": ("top2_accuracy", ">="), "test_wine[cpu]": ("accuracy", ">="),
    "test_iris_two_outputs[cpu]": ("species_accuracy", ">="),
}


def run(command: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    # Nothing of this checkout or of the outer pytest session leaks in.
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTEST_", "FITBENCH_")) and key != "PYTHONPATH"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel built from this checkout (and scikit-learn, the project's own
    dependency); its bin directory."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # a copy: building never writes into the checkout
    shutil.copytree(ROOT / "fitbench", source / "fitbench", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    # The README's command, in the copy.
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", "dist", "."], cwd=source)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (source / "dist").glob("fitbench-*.whl")
    assert f"pip install dist/{wheel.name}" in (ROOT / "README.md").read_text()  # the name the README gives
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel), "scikit-learn"],
                    cwd=work, timeout=1800)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv / "bin"


def test_a_project_outside_the_checkout_benchmarks_gates_and_reports_its_own_models(installed):
    project = Path(tempfile.mkdtemp(prefix="fitbench-user-project-"))
    try:
        shutil.copytree(PROJECT / "benchmarks", project / "benchmarks")
        for name in ("a", "b"):
            session = run([str(installed / "pytest"), "benchmarks", "--profile", "smoke", "--devices", "cpu",
                           f"--benchmark-json={name}.json"], cwd=project)
            assert session.returncode == 0, session.stdout + session.stderr
            assert "created: 1/1 worker" in session.stdout  # a benchmark session: crash isolation by default
        summary = session.stdout.split("fitbench summary", 1)[1]
        assert "<=60.000" in summary and ">=0.950" in summary  # MAE's goal is <=, AUC's >=
        document = json.loads((project / "a.json").read_text())
        assert document["fitbench"]["package"].startswith(str(installed.parent))  # the wheel's, not the checkout's
        records = {bench["name"]: bench["extra_info"] for bench in document["benchmarks"]}
        assert set(records) == set(CHECKED)
        for name, (metric, goal) in CHECKED.items():  # each its own metric, its goal known or given
            assert (records[name]["check"]["metric"], records[name]["check"]["goal"]) == (metric, goal), name
            assert records[name]["check"]["passed"], (name, records[name]["check"])
        for line in summary.splitlines():  # efficiency is a figure or n/a, never a false 0.0%
            assert " 0.0% " not in line + " ", line
        two_inputs = records["test_cancer_two_inputs[cpu]"]["measurement"]["workload"]
        assert two_inputs["input_shape"] == {"means": [10], "extremes": [20]} and "pixel_scale" not in two_inputs
        gru = records["test_sequences[cpu]"]
        assert gru["model"]["flops_per_sample"] > 10 * gru["model"]["params"]  # the GRU's steps counted
        diabetes = records["test_diabetes[cpu]"]
        dataset = diabetes["measurement"]["workload"]["dataset"]
        assert dataset["function"] == "test_diabetes.diabetes" and dataset["args"] == {"seed": 0}
        assert dataset["fingerprint"].startswith("sha256:")
        check = diabetes["check"]
        assert check["metric"] == "mae" and check["goal"] == "<=" and check["passed"]
        assert diabetes["measurement"]["workload"]["input_shape"] == [10]  # from the data
        assert records["test_cancer[cpu-units-8]"]["check"]["metric"] == "auc"

        compared = run([str(installed / "fitbench"), "compare", "a.json", "b.json", "--json", "verdicts.json"],
                       cwd=project)
        assert compared.returncode in (0, 1), compared.stdout + compared.stderr  # 2: could not compare
        verdicts = {v["name"]: v for v in json.loads((project / "verdicts.json").read_text())["verdicts"]}
        assert verdicts["test_diabetes[cpu]"]["metric_name"] == "test mae"
        assert verdicts["test_diabetes[cpu]"]["metric"] == "no change"  # seeded: the same MAE
        assert verdicts["test_diabetes[cpu]"]["thresholds"]["metric"] == 3.0  # the test's own gate marker
        assert verdicts["test_cancer[cpu-units-32]"]["metric_name"] == "test auc"

        reported = run([str(installed / "fitbench"), "report", "a.json", "b.json", "-o", "report"], cwd=project)
        assert reported.returncode == 0, reported.stdout + reported.stderr
        text = (project / "report" / "report.md").read_text()
        assert "## Diabetes MLP: MAE" in text and "## Breast cancer classifier: AUC" in text
        assert "test mae" in text and "<= 60.0000" in text
        assert "## Digits CNN: filters" in text and "## Iris, two outputs: species accuracy" in text
        # A user's grid is plotted against what its cases change, with no Plot declared.
        assert "![digits_cnn_model_args_filters_smoke](digits_cnn_model_args_filters_smoke.png)" in text
        assert (project / "report" / "digits_cnn_model_args_filters_smoke.png").stat().st_size > 10_000
    finally:
        shutil.rmtree(project, ignore_errors=True)
