"""fitbench history: change points in saved runs, their rates on simulated series, and the
command on run files (a planted step found where it is, a flat series left alone, alerts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fitbench import cli
from fitbench.compare import history
from tests.helpers import make_record

MACHINE = {"system": "Linux", "machine": "x86_64", "python": "3.11.7", "cpu_name": "Test CPU", "gpus": [],
           "tensorflow": "2.21.0", "keras": "3.15.1"}


def found_steps(values: np.ndarray) -> list[int]:
    return history.significant(values, history.steps(values))


def test_the_false_change_point_rate_of_flat_series_and_the_detection_of_a_step():
    rng = np.random.default_rng(7)
    flat = [bool(found_steps(np.log(rng.lognormal(0, 0.03, 20)))) for _ in range(1000)]
    assert np.mean(flat) <= 0.03  # measured: 0.010 (simulated 2026-11-30)
    stepped = [found_steps(np.log(np.r_[rng.lognormal(0, 0.03, 10), 1.15 * rng.lognormal(0, 0.03, 10)]))
               for _ in range(300)]
    assert np.mean([s == [10] for s in stepped]) >= 0.9  # measured: 0.97


def write_runs(folder, factors, software=None):
    """One run file a night: the tiny benchmark with 3% noise, each night's epochs times its factor."""
    rng = np.random.default_rng(3)
    folder.mkdir()
    for night, factor in enumerate(factors, start=1):
        seconds = [2.0] + list(factor * rng.lognormal(0, 0.03, 8))
        record = make_record("test_tiny[cpu]", epoch_seconds=seconds)
        machine = {**MACHINE, **((software or {}).get(night, {}))}
        document = {"machine_info": machine, "commit_info": {"id": f"{night:02d}" + "c" * 38},
                    "datetime": f"2026-11-{night:02d}T02:00:00",
                    "benchmarks": [{"name": record.name, "group": "g", "params": {"device": "cpu"},
                                    "stats": {"data": seconds[1:]}, "extra_info": record.to_json()}]}
        (folder / f"{night:04d}_run.json").write_text(json.dumps(document))
    return folder


def test_a_planted_step_is_found_between_the_right_runs_and_alerts(tmp_path, capsys):
    runs = write_runs(tmp_path / "runs", [1.0] * 10 + [1.15] * 10,
                      software={night: {"tensorflow": "2.22.0"} for night in range(11, 21)})
    summary = tmp_path / "history.md"
    assert cli.main(["history", str(runs), "--alert-last", "10", "--markdown", str(summary)]) == 1
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("REGRESSION")]
    assert "test_tiny[cpu]: epoch time x1.1" in line
    assert "between 0010 10cccccc 2026-11-10 02:00 and 0011 11cccccc 2026-11-11 02:00" in line
    assert "TensorFlow 2.21.0 -> 2.22.0" in line  # the step coincides with an upgrade, and says so
    assert "1 regression among the last 10 runs" in out
    assert "| regression |" in summary.read_text()
    # Older than the last 5 runs: found, but no alert.
    assert cli.main(["history", str(runs), "--alert-last", "5"]) == 0
    # The report's history plot marks it, and the report lists it.
    report = tmp_path / "report"
    assert cli.main(["report", *map(str, sorted(runs.glob("*.json"))), "-o", str(report),
                     "--benchmarks", "tests/sample/bench_tiny.py"]) == 0
    text = (report / "report.md").read_text()
    assert "Change points (`fitbench history`):" in text and "* REGRESSION   test_tiny[cpu]: epoch time x1.1" in text
    assert list(report.glob("history_*.png"))


def test_a_flat_series_says_so(tmp_path, capsys):
    runs = write_runs(tmp_path / "runs", [1.0] * 20)
    assert cli.main(["history", str(runs), "--alert-last", "10"]) == 0
    out = capsys.readouterr().out
    assert "test_tiny[cpu]: no change point in 20 runs" in out and "0 regressions among the last 10 runs" in out


def test_too_few_runs_and_unreadable_files_are_named(tmp_path, capsys):
    runs = write_runs(tmp_path / "runs", [1.0] * 3)
    (runs / "notes.json").write_text("{}")
    assert cli.main(["history", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "3 completed runs: too few to search (at least 6)" in out and "skipped: " in out
    assert cli.main(["history", str(tmp_path / "nowhere")]) == 2


@pytest.mark.e2e
def test_the_readme_history_command_runs_as_written(tmp_path):
    import re
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    from tests.helpers import ROOT

    section = (ROOT / "README.md").read_text().split("## When did it get slower?", 1)[1]
    (command,) = re.search(r"```bash\n(.*?)```", section, re.S).group(1).strip().splitlines()
    write_runs(tmp_path / ".benchmarks", [1.0] * 12 + [1.2] * 2)  # a regression in the last 2 nights
    fitbench = str(Path(sys.executable).parent / "fitbench")
    run = subprocess.run([fitbench, *shlex.split(command)[1:]], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 regression among the last 3 runs" in run.stdout and (tmp_path / "history.md").exists()


def test_a_run_section_of_a_newer_schema_is_refused_naming_it(tmp_path):
    import pytest

    from fitbench.compare.results import NotBenchmarkJSON, load_run

    runs = write_runs(tmp_path / "runs", [1.0])
    (path,) = runs.glob("*.json")
    document = json.loads(path.read_text())
    document["fitbench"] = {"schema": 99}
    path.write_text(json.dumps(document))
    with pytest.raises(NotBenchmarkJSON, match="run section schema 99 is newer than this fitbench reads"):
        load_run(path)
