"""Whole pytest sessions, as a user runs them: JSON rounds, profiles, skips, options."""

from __future__ import annotations

import json

import pytest

import fixtures
from fitbench.datasets import DEBIAN_DATASETS
from tests.conftest import ROOT, run_pytest

SAMPLE = "tests/sample/bench_tiny.py"
SAMPLE_OPTIONS = ("-o", "python_files=bench_*.py", "--offline", "--require-data")


def test_our_fixtures_package_is_imported():
    assert fixtures.__file__.startswith(str(ROOT / "fixtures"))


def test_benchmark_json_has_a_round_per_epoch_after_the_first(synthetic_data_dir, tmp_path):
    out = tmp_path / "run.json"
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu",
                     "--profile", "default", f"--benchmark-json={out}", "--benchmark-save-data")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "fitbench: TensorFlow" in run.stdout  # the report header
    report = json.loads(out.read_text())
    assert report["machine_info"]["tensorflow"] and "keras" in report["machine_info"]
    (bench,) = report["benchmarks"]
    assert bench["name"] == "test_tiny[cpu]" and bench["group"] == "tiny"
    assert bench["stats"]["rounds"] == 3 and len(bench["stats"]["data"]) == 3
    info = bench["extra_info"]
    assert info["profile"] == "default" and info["schedule_bound"] == "default: 2,000 images"
    assert info["epochs"] == 4 and len(info["epoch_seconds"]) == 4
    # pytest-benchmark's clock and the runner's own agree to within the cost of a function call.
    for benchmark_seconds, runner_seconds in zip(bench["stats"]["data"], info["epoch_seconds"][1:], strict=True):
        assert abs(benchmark_seconds - runner_seconds) < 0.05 * runner_seconds + 0.01


def test_smoke_profile_and_two_logical_cpus(synthetic_data_dir, tmp_path):
    out = tmp_path / "run.json"
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu",
                     "--profile", "smoke", "--cpu-replicas", "2", f"--benchmark-json={out}")
    assert run.returncode == 0, run.stdout + run.stderr
    (bench,) = json.loads(out.read_text())["benchmarks"]
    assert bench["stats"]["rounds"] == 7
    info = bench["extra_info"]
    assert info["replicas"] == 2 and info["per_replica_batch_size"] == 32 and info["train_samples"] == 1000


def test_xdist_disables_benchmarks_but_still_trains_and_checks(synthetic_data_dir):
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu",
                     "--profile", "smoke", "-n", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    # The worker's row reaches the controller's summary (through the report's user_properties).
    assert "fitbench summary" in run.stdout and "\ntiny " in run.stdout


def test_absent_devices_are_skipped_with_the_reason(synthetic_data_dir):
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "gpu,tpu",
                     "--profile", "smoke", "-rs")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tpu: no TPU reachable" in run.stdout
    assert "2 skipped" in run.stdout


@pytest.mark.skipif((DEBIAN_DATASETS / "fashion-mnist").is_dir(), reason="Debian's dataset is installed")
def test_missing_data_skips_or_fails_under_require_data(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    no_data = {"KERAS_HOME": str(empty)}
    options = ("-o", "python_files=bench_*.py", "--offline", "--devices", "cpu", "--data-dir", str(empty), "-rs")
    skipped = run_pytest(SAMPLE, *options, env=no_data)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout
    assert "--data-dir" in skipped.stdout  # the reason says how to provide the data
    failed = run_pytest(SAMPLE, *options, "--require-data", env=no_data)
    assert failed.returncode == 1 and "fashion_mnist not found" in failed.stdout


def test_unknown_device_is_a_usage_error():
    run = run_pytest(SAMPLE, "-o", "python_files=bench_*.py", "--devices", "cpu,npu")
    assert run.returncode == 4
    assert "unknown device npu: choose from cpu, gpu, tpu" in run.stderr


def test_session_summary_table_and_device_info(synthetic_data_dir, tmp_path):
    out = tmp_path / "run.json"
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu",
                     "--profile", "smoke", f"--benchmark-json={out}")
    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.stdout.split("fitbench summary", 1)[1].splitlines()
    start = next(i for i, line in enumerate(summary) if line.startswith("experiment"))
    header, _, row = summary[start: start + 3]
    assert header.split()[:4] == ["experiment", "case", "dev", "accuracy"]
    assert row.split()[0] == "tiny" and row.split()[2] == "cpu" and ">=0.5 " in row
    assert max(len(line) for line in summary[start: start + 3]) <= 100
    document = json.loads(out.read_text())
    info = document["benchmarks"][0]["extra_info"]
    assert info["experiment"] == "test_tiny" and info["case"] == "" and info["accuracy_threshold"] == 0.5
    assert info["host_peak_rss_bytes"] > 0 and info["device_peak_memory_bytes"] is None  # no GPU here
    assert document["fitbench"] == {"profile": "smoke", "device_comparison": []}


def test_gate_inside_pytest_names_the_regressed_benchmark(synthetic_data_dir, tmp_path):
    options = (SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu",
               "--profile", "smoke")
    baseline = tmp_path / "baseline.json"
    assert run_pytest(*options, f"--benchmark-json={baseline}").returncode == 0
    slowed = run_pytest(*options, "-p", "tests.plugins.slowdown", "--plant-slowdown", "1.0",
                        "--gate", str(baseline))
    assert slowed.returncode == 1, slowed.stdout
    assert "FAILED (gate) test_tiny[cpu]: regression" in slowed.stdout
    assert "1 passed" in slowed.stdout  # the test itself passed; the gate failed the session
    # Under xdist the workers' rows reach the controller, which gates them (once).
    distributed = run_pytest(*options, "-n", "1", "-p", "tests.plugins.slowdown", "--plant-slowdown", "1.0",
                             "--gate", str(baseline))
    assert distributed.returncode == 1, distributed.stdout
    assert distributed.stdout.count("FAILED (gate) test_tiny[cpu]: regression") == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    errored = run_pytest(*options, "--gate", str(broken))
    assert errored.returncode == 1 and "the gate could not run" in errored.stdout


def test_interleaved_sessions_take_turns_and_compare_pair_by_pair(synthetic_data_dir, tmp_path, capsys,
                                                                   monkeypatch):
    import os
    import shlex
    import sys

    from fitbench import cli

    for key in [k for k in os.environ if k.startswith("PYTEST_")]:  # see run_pytest
        monkeypatch.delenv(key)
    options = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", SAMPLE, *SAMPLE_OPTIONS,
               "--data-dir", str(synthetic_data_dir), "--devices", "cpu", "--profile", "smoke", "-q"]
    base, slowed = tmp_path / "base.json", tmp_path / "slowed.json"
    commands = [shlex.join([*options, f"--benchmark-json={base}"]),
                shlex.join([*options, "-p", "tests.plugins.slowdown", "--plant-slowdown", "1.0",
                            f"--benchmark-json={slowed}"])]
    assert cli.main(["interleave", "--logs", str(tmp_path / "logs"), *commands]) == 0
    printed = capsys.readouterr().out
    assert "interleaved: session 2 of 2 in ring" in printed
    infos = [json.loads(p.read_text())["benchmarks"][0]["extra_info"] for p in (base, slowed)]
    turns_base, turns_slowed = (info["epoch_turns"] for info in infos)
    # One turn per epoch, alternating (the first turn of each session is its start-up).
    assert turns_base == [2 + 2 * k for k in range(8)] and turns_slowed == [3 + 2 * k for k in range(8)]
    assert cli.main(["compare", str(base), str(slowed)]) == 1
    assert "interleaved, signed-rank on 7 pairs" in capsys.readouterr().out
    # pytest-xdist workers would train at the same time: refused.
    refused = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "-n", "1", env={"FITBENCH_INTERLEAVE": f"{tmp_path}:0"})
    assert refused.returncode == 4 and "cannot use pytest-xdist" in refused.stderr
