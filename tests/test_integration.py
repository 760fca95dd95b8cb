"""Whole pytest sessions, as a user runs them: JSON rounds, profiles, skips, options."""

from __future__ import annotations

import json

import pytest

import fitbench
from fitbench.processes import turns
from fixtures.datasets import DEBIAN_DATASETS
from tests.helpers import ROOT, SHARED_CACHE, run_pytest

# Whole pytest sessions: the end-to-end tier (pytest tests -m e2e).
pytestmark = pytest.mark.e2e

SAMPLE = "tests/sample/bench_tiny.py"
SAMPLE_OPTIONS = ("-o", "python_files=bench_*.py", "--offline", "--require-data")


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
    assert info["fitbench_schema"] == 3 and report["fitbench"]["profile"] == "default"
    measurement = info["measurement"]
    assert measurement["profile"] == "default" and measurement["schedule"]["bound"] == "default: 2,000 images"
    assert measurement["schedule"]["epochs"] == 4 and len(info["epochs"]) == 4
    assert "NaN" not in out.read_text()  # strict JSON
    # pytest-benchmark's clock and the runner's own agree to within the cost of a function call.
    runner_clock = [epoch["seconds"] for epoch in info["epochs"][1:]]
    for benchmark_seconds, runner_seconds in zip(bench["stats"]["data"], runner_clock, strict=True):
        assert abs(benchmark_seconds - runner_seconds) < 0.05 * runner_seconds + 0.01


def test_smoke_profile_and_two_logical_cpus(synthetic_data_dir, tmp_path):
    out = tmp_path / "run.json"
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu",
                     "--profile", "smoke", "--cpu-replicas", "2", f"--benchmark-json={out}")
    assert run.returncode == 0, run.stdout + run.stderr
    (bench,) = json.loads(out.read_text())["benchmarks"]
    assert bench["stats"]["rounds"] == 7
    measurement = bench["extra_info"]["measurement"]
    assert measurement["replicas"] == 2 and measurement["per_replica_batch"] == 32
    assert measurement["schedule"]["train_samples"] == 1000
    assert "cpux2" in run.stdout  # the summary shows the replicas


def test_several_xdist_workers_disable_benchmarks_but_still_train_and_check(synthetic_data_dir):
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu",
                     "--profile", "smoke", "-n", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout and "created: 2/2 workers" in run.stdout
    # The worker's row reaches the controller's summary (through the report's user_properties).
    assert "fitbench summary" in run.stdout and "\ntiny " in run.stdout


def test_absent_devices_are_skipped_with_the_reason(synthetic_data_dir):
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "gpu,tpu",
                     "--profile", "smoke", "-rs")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tpu: no TPU reachable" in run.stdout
    assert "2 skipped" in run.stdout


def test_a_tpu_the_user_named_that_cannot_be_reached_stops_the_session_before_training(synthetic_data_dir):
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu,tpu",
                     "--tpu", "nonsense", "--profile", "smoke")
    assert run.returncode == 4, run.stdout + run.stderr  # pytest's usage error
    error = [line for line in run.stderr.splitlines() if line.startswith("ERROR: ")]
    assert error == [error[0]] and "--tpu/TPU_NAME named a TPU that cannot be used: TPU 'nonsense' not reachable" \
        in error[0], run.stderr
    assert "epoch 1/" not in run.stdout  # nothing trained, not even the cpu case


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


def test_threads_size_tensorflows_pools_in_the_training_worker_and_are_part_of_the_measurement(
        synthetic_data_dir, tmp_path):
    """--threads reaches the process that trains (an isolated session's worker), is recorded, and
    one thread's epochs are not compared with TensorFlow's default's."""
    from fitbench.compare import gate
    from fitbench.compare.results import load_run

    out = tmp_path / "threads-1.json"
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu",
                     "--profile", "smoke", "--threads", "1", f"--benchmark-json={out}", isolate=True)
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads(out.read_text())
    assert document["benchmarks"][0]["extra_info"]["measurement"]["threads"] == 1
    assert document["fitbench"]["hardware"]["host"]["threads"] == {"intra_op": 1, "inter_op": 1}
    # The same run as TensorFlow's default pools would have recorded it (every other field alike).
    document["benchmarks"][0]["extra_info"]["measurement"]["threads"] = 0
    default = tmp_path / "threads-0.json"
    default.write_text(json.dumps(document))
    with pytest.raises(gate.NothingComparable, match=r"test_tiny\[cpu\]: incomparable \(measured different "
                                                     r"things: threads: 0 != 1\)"):
        gate.compare([load_run(default)], [load_run(out)])
    for isolate in (False, True):  # refused by the process that trains, and by an isolated session's controller
        refused = run_pytest(SAMPLE, "-o", "python_files=bench_*.py", "--threads", "-1", isolate=isolate)
        assert refused.returncode == 4 and "--threads -1: give 1 or more threads" in refused.stderr


def test_session_summary_table_and_device_info(synthetic_data_dir, tmp_path):
    out = tmp_path / "run.json"
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu",
                     "--profile", "smoke", f"--benchmark-json={out}")
    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.stdout.split("fitbench summary", 1)[1].splitlines()
    start = next(i for i, line in enumerate(summary) if line.startswith("experiment"))
    header, _, row = summary[start: start + 3]
    assert header.split()[:4] == ["experiment", "case", "dev", "target"]
    assert row.split()[0] == "tiny" and row.split()[2] == "cpu" and ">=0.500 " in row
    assert max(len(line) for line in summary[start: start + 3]) <= 120
    document = json.loads(out.read_text())
    info = document["benchmarks"][0]["extra_info"]
    assert info["check"] == {"split": "test", "metric": "accuracy", "goal": ">=", "threshold": 0.5,
                             "value": info["test"]["metric"], "passed": True}
    memory = info["memory"]
    assert memory["host_peak_rss_bytes"] > 0 and memory["device_peak_memory_bytes"] is None  # no GPU here
    peaks = document["fitbench"].pop("peak_gflops")
    assert peaks["cpu"]["float32"] > 0  # measured at the start of the session
    section = document["fitbench"]
    assert section.pop("version") == fitbench.__version__ and section.pop("package") == str(ROOT / "fitbench")
    hardware_state = section.pop("hardware")  # no GPU here: the reason, and the CPU's governor (or why not)
    assert "gpu_unavailable" in hardware_state and "governor" in hardware_state["cpu"]
    assert document["fitbench"] == {"schema": 2, "profile": "smoke", "cpu_replicas": 1, "cluster": None,
                                    "partial": False, "device_comparison": [], "variant_speedups": [],
                                    "records_without_rounds": [], "scaling": []}
    assert info["measurement"]["workers"] == 1 and info["measurement"]["cluster"] == {}
    derived = info["derived"]
    assert 0 < derived["efficiency"] < 1.5
    assert derived["time_to_target"]["metric"] == "test accuracy" and derived["time_to_target"]["epochs"] >= 1


def test_gate_inside_pytest_names_the_regressed_benchmark(synthetic_data_dir, tmp_path):
    # Epochs as the unit (--gate-run-noise 0): this tests the wiring, not the drift allowance.
    options = (SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu",
               "--profile", "smoke", "--gate-run-noise", "0")
    baseline = tmp_path / "baseline.json"
    assert run_pytest(*options, f"--benchmark-json={baseline}").returncode == 0
    slowed = run_pytest(*options, "-p", "tests.plugins.slowdown", "--plant-slowdown", "3.0",
                        "--gate", str(baseline))
    assert slowed.returncode == 1, slowed.stdout
    assert "FAILED (gate) test_tiny[cpu]: regression" in slowed.stdout
    assert "1 passed" in slowed.stdout  # the test itself passed; the gate failed the session
    # Under xdist the workers' rows reach the controller, which gates them (once).
    distributed = run_pytest(*options, "-n", "1", "-p", "tests.plugins.slowdown", "--plant-slowdown", "3.0",
                             "--gate", str(baseline))
    assert distributed.returncode == 1, distributed.stdout
    assert distributed.stdout.count("FAILED (gate) test_tiny[cpu]: regression") == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    # A bad baseline or option is refused before any training: a usage error naming it.
    errored = run_pytest(*options, "--gate", str(broken))
    assert errored.returncode == 4 and "--gate: " in errored.stderr and "not pytest-benchmark's" in errored.stderr
    assert "fitbench summary" not in errored.stdout
    alpha = run_pytest(*options, "--gate", str(baseline), "--gate-alpha", "5")
    assert alpha.returncode == 4 and "alpha '5'" in alpha.stderr


def test_interleaved_sessions_take_turns_and_compare_pair_by_pair(synthetic_data_dir, tmp_path, capsys,
                                                                   monkeypatch):
    import os
    import shlex
    import sys

    from fitbench import cli

    for key in [k for k in os.environ if k.startswith("PYTEST_")]:  # see run_pytest
        monkeypatch.delenv(key)
    options = [sys.executable, "-m", "pytest", *SHARED_CACHE, SAMPLE, *SAMPLE_OPTIONS,
               "--data-dir", str(synthetic_data_dir), "--devices", "cpu", "--profile", "smoke", "-q"]
    base, slowed = tmp_path / "base.json", tmp_path / "slowed.json"
    commands = [shlex.join([*options, f"--benchmark-json={base}"]),
                shlex.join([*options, "-p", "tests.plugins.slowdown", "--plant-slowdown", "3.0",
                            f"--benchmark-json={slowed}"])]
    assert cli.main(["interleave", "--logs", str(tmp_path / "logs"), *commands]) == 0
    printed = capsys.readouterr().out
    assert "interleaved: session 2 of 2 in ring" in printed
    infos = [json.loads(p.read_text())["benchmarks"][0]["extra_info"] for p in (base, slowed)]
    turns_base, turns_slowed = ([epoch["turn"] for epoch in info["epochs"]] for info in infos)
    # One turn per epoch, in the ring's alternating order (the first turn of each session is its
    # start-up): base 3 4 7 8 ..., slowed 2 5 6 9 ..., epoch k of both in round k + 1.
    expected = [[t for t in range(2, 18) if turns.holder(t, 2, "alternate") == index] for index in (0, 1)]
    assert [turns_base, turns_slowed] == expected and turns_base[:2] == [3, 4]
    assert cli.main(["compare", str(base), str(slowed)]) == 1
    assert "interleaved, signed-rank interval on 7 pairs" in capsys.readouterr().out
    # Several pytest-xdist workers would train at the same time: refused.
    refused = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "-n", "2", env={"FITBENCH_INTERLEAVE": f"{tmp_path}:0"})
    assert refused.returncode == 4 and "cannot use pytest-xdist" in refused.stderr


def test_benchmark_compare_compares_like_with_like(synthetic_data_dir, tmp_path):
    storage = tmp_path / "storage"
    options = (SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "--devices", "cpu",
               f"--benchmark-storage={storage}")
    for profile in ("default", "smoke"):
        saved = run_pytest(*options, "--profile", profile, "--benchmark-autosave")
        assert saved.returncode == 0, saved.stdout + saved.stderr
    files = sorted(p.name for p in storage.rglob("*.json"))
    assert files[0].startswith("0001_") and files[0].endswith("_default.json")
    assert files[1].startswith("0002_") and files[1].endswith("_smoke.json")  # the name says the profile
    # An interrupted default session's run, saved after them: partial, so never the baseline.
    first = next(storage.rglob(files[0]))
    document = json.loads(first.read_text())
    document["fitbench"]["partial"] = True
    interrupted = first.with_name(files[0].replace("0001_", "0003_"))
    interrupted.write_text(json.dumps(document))
    # The newest saved run is smoke; a default session compares with the newest *default* run.
    default = run_pytest(*options, "--profile", "default", "--benchmark-compare",
                         "--benchmark-compare-fail=median:1000%")
    assert default.returncode == 0, default.stdout + default.stderr
    assert f"--benchmark-compare: {files[0]}, the newest saved run of profile default" in default.stdout
    assert f"skipped newer {interrupted.name} (partial: its session was interrupted)" in default.stdout
    interrupted.unlink()
    assert "0001_" in default.stdout and "NOW" in default.stdout  # pytest-benchmark's table compares them
    # No saved run of this measurement: refused in one line, and nothing is compared.
    replicas = run_pytest(*options, "--profile", "smoke", "--cpu-replicas", "2", "--benchmark-compare",
                          "--benchmark-compare-fail=median:5%")
    assert replicas.returncode == 0, replicas.stdout + replicas.stderr
    assert "--benchmark-compare refused: no saved run of profile smoke (cpu replicas 2)" in replicas.stdout
    # A run named explicitly is compared benchmark by benchmark, the incomparable left out and named.
    named = run_pytest(*options, "--profile", "smoke", "--benchmark-compare=0001",
                       "--benchmark-compare-fail=median:5%")
    assert named.returncode == 0, named.stdout + named.stderr
    assert "PerformanceRegression" not in named.stdout + named.stderr
    assert f"not compared with {files[0]}: test_tiny[cpu]: profile: 'default' != 'smoke'" in named.stdout
