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
    assert "test_tiny[cpu] (epoch time): no change point in 20 runs" in out
    assert "0 regressions among the last 10 runs" in out


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


def night_document(record, commit: str, night: int, minute: int = 0) -> dict:
    return {"machine_info": MACHINE, "commit_info": {"id": commit},
            "datetime": f"2026-11-{night:02d}T02:{minute:02d}:00",
            "benchmarks": [{"name": record.name, "group": "g", "params": {"device": "cpu"},
                            "stats": {"data": record.steady_seconds}, "extra_info": record.to_json()}]}


def write_nights(folder, machine, code, references=None, seed=5):
    """One `fitbench ab` folder a night: the reference (base) and the night's commit (candidate)
    trained on a machine whose speed is `machine[night]`, the night's code `code[night]` times
    slower; the verdict's ratio is the code's, with 2% noise (the drift both sides shared cancels)."""
    rng = np.random.default_rng(seed)
    for night, (speed, slower) in enumerate(zip(machine, code, strict=True), start=1):
        out = folder / f"2026-11-{night:02d}"
        out.mkdir(parents=True)
        reference = (references or {}).get(night, "01" + "r" * 38)
        base = make_record("test_tiny[cpu]", epoch_seconds=[2.0, *(speed * rng.lognormal(0, 0.03, 8))])
        cand = make_record("test_tiny[cpu]", epoch_seconds=[2.0, *(speed * slower * rng.lognormal(0, 0.03, 8))])
        (out / "base-1.json").write_text(json.dumps(night_document(base, reference, night)))
        (out / "candidate-1.json").write_text(json.dumps(night_document(cand, f"{night:02d}" + "c" * 38, night, 1)))
        ratio = slower * rng.lognormal(0, 0.02)
        (out / "verdicts.json").write_text(json.dumps({"verdicts": [
            {"name": "test_tiny[cpu]", "ratio": ratio, "ratio_low": ratio * 0.95, "ratio_high": ratio * 1.05,
             "candidate_epochs": 8}]}))
    return folder


def test_nightly_ratios_to_a_reference_alert_at_the_code_step_and_name_the_machine_drift(tmp_path, capsys):
    # The machine slows by 30% from night 8 on; the code by 15% from night 14 on.
    nights = write_nights(tmp_path / "results", machine=[1.0] * 7 + [1.3] * 13, code=[1.0] * 13 + [1.15] * 7)
    summary = tmp_path / "history.md"
    assert cli.main(["history", str(nights), "--alert-last", "10", "--markdown", str(summary)]) == 1
    out = capsys.readouterr().out
    (drift,) = [line for line in out.splitlines() if line.startswith("MACHINE DRIFT")]
    assert "test_tiny[cpu]: epoch time x1.3" in drift and "07cccccc" in drift and "08cccccc" in drift
    assert "the ratio to reference 01rrrrrr (TensorFlow 2.21.0, Keras 3.15.1) did not show it: x1.0" in drift
    assert "the reference's own epochs x1.3" in drift
    (step,) = [line for line in out.splitlines() if line.startswith("REGRESSION   test_tiny[cpu]: ratio to")]
    assert "x1.1" in step and "13cccccc" in step and "14cccccc" in step
    assert "1 regression among the last 10 runs" in out  # the ratios alert; the epoch times are context
    assert "machine drift" in summary.read_text()


def test_a_new_reference_starts_a_new_ratio_series(tmp_path, capsys):
    moved = {night: "02" + "r" * 38 for night in range(11, 21)}
    nights = write_nights(tmp_path / "results", machine=[1.0] * 20, code=[1.0] * 20, references=moved)
    assert cli.main(["history", str(nights)]) == 0
    out = capsys.readouterr().out
    assert "(ratio to reference 02rrrrrr (TensorFlow 2.21.0, Keras 3.15.1)): the reference moved from 01rrrrrr, " \
        "Python 3.11.7, TensorFlow 2.21.0, Keras 3.15.1 to 02rrrrrr, Python 3.11.7" in out
    assert out.count("no change point in 10 runs") == 2


def test_confirm_re_measures_each_candidate_and_only_a_reproduced_one_alerts(tmp_path, capsys, monkeypatch):
    """The wiring of --confirm and --bisect, with the A/B steps answered here (the real ones
    run in docs/gating.md's nightly series): each candidate's two commits are A/B'd on its
    benchmark only; a regression there alerts and is bisected, anything else is dismissed."""
    from fitbench.cli import bisect

    nights = write_nights(tmp_path / "results", machine=[1.0] * 20, code=[1.0] * 13 + [1.15] * 7)
    asked = []

    def step(self, tested, label, cwd, base=None, candidate=None, until=None, **_):
        asked.append((base[:2], candidate[:2], self.pytest_args, until))
        result = bisect.BAD if answer == "bad" else bisect.GOOD
        found = bisect.Step(1, tested, label, result, f"test_tiny[cpu]: epoch time x{ratio}", ratio, ratio - .03,
                            ratio + .03, output=str(self.output))
        self.search.steps.append(found)
        return found

    monkeypatch.setattr(bisect.Bisector, "step", step)
    monkeypatch.setattr(bisect, "bisect_commits", lambda bisector, good, bad, cwd: bisect.Search(
        first_bad=bad, first_bad_label=f"{bad[:8]} widen the layer"))
    args = ["history", str(nights), "--alert-last", "10", "--confirm", "--bisect", "--budget", "10m",
            "--output", str(tmp_path / "out"), "--", "benchmarks", "-k", "tiny", "--profile", "smoke"]
    answer, ratio = "bad", 1.15
    assert cli.main(args) == 1
    out = capsys.readouterr().out
    assert asked[0][:3] == ("13", "14", ["benchmarks", "--profile", "smoke", "-k", "test_tiny[cpu]"])
    assert 0 < asked[0][3] <= 600  # rounds until decided within what the budget leaves
    assert "CONFIRMED: test_tiny[cpu] (ratio to reference" in out
    assert "first bad: 14cccccc widen the layer (the commit after the step, confirmed above)" in out
    assert "1 confirmed regression among the last 10 runs" in out
    saved = json.loads((tmp_path / "out" / "confirmations.json").read_text())
    assert saved[0]["status"] == "confirmed"
    answer, ratio = "good", 1.003
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "NOT REPRODUCED: test_tiny[cpu]" in out and "x1.003 [0.973, 1.033] (machine drift)" in out
    assert "0 confirmed regressions among the last 10 runs" in out


def test_steps_that_cannot_be_re_measured_say_why(tmp_path, capsys):
    # Absolute runs only, all of one commit: the step can only be the machine, no A/B needed.
    runs = write_runs(tmp_path / "runs", [1.0] * 10 + [1.3] * 10)
    for path in runs.glob("*.json"):
        document = json.loads(path.read_text())
        document["commit_info"] = {"id": "ab" * 20}
        path.write_text(json.dumps(document))
    args = ["history", str(runs), "--alert-last", "10", "--confirm", "--output", str(tmp_path / "out")]
    assert cli.main([*args, "--", "benchmarks"]) == 0
    out = capsys.readouterr().out
    assert "NOT REPRODUCED: test_tiny[cpu] (epoch time" in out
    assert "the same commit abababab and the same software on both sides" in out
    assert cli.main(args) == 2 and "give the pytest arguments after --" in capsys.readouterr().err
    assert cli.main(["history", str(runs), "--bisect"]) == 2 and "give --confirm too" in capsys.readouterr().err


def test_the_steps_of_a_search_or_a_confirmation_are_not_read_as_nights(tmp_path):
    import shutil

    from fitbench.cli.bisect import STEPS_MARKER
    from fitbench.cli.commands.history import gather

    nights = write_nights(tmp_path / "results", machine=[1.0] * 6, code=[1.0] * 6)
    search = tmp_path / "results" / "bisect"
    shutil.copytree(nights / "2026-11-01", search / "step-1")
    (search / STEPS_MARKER).write_text("steps")
    runs, found, skipped = gather([str(tmp_path / "results")])
    assert (len(runs), len(found), skipped) == (0, 6, [])
    # Tonight's A/B, still running: its sides' runs are neither a night nor plain runs.
    running = tmp_path / "results" / "2026-11-07"
    shutil.copytree(nights / "2026-11-01", running)
    (running / "verdicts.json").unlink()
    (running / "round-1").mkdir()
    runs, found, skipped = gather([str(tmp_path / "results")])
    assert (len(runs), len(found)) == (0, 6)
    assert skipped == [f"{running}: a fitbench ab without its verdicts.json (still running, or it could not finish): "
                       "not read"]


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
