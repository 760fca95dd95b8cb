"""Nothing lost, every failure a verdict: killed sessions, xdist, divergence, out of memory."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from fitbench import cli
from fitbench.compare.results import load_run
from tests.helpers import ROOT, SHARED_CACHE

MANY = "tests/sample/bench_many.py"
OPTIONS = ("-o", "python_files=bench_*.py", "--offline", "--require-data", "--devices", "cpu", *SHARED_CACHE)


def start_session(data_dir, out, *more: str) -> subprocess.Popen:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", MANY, *OPTIONS, "--data-dir", str(data_dir), "--profile", "smoke",
         # Slowed 3x so that a kill lands in the middle of the session.
         "-p", "tests.plugins.slowdown", "--plant-slowdown", "3.0", f"--benchmark-json={out}", *more],
        cwd=ROOT, env=clean, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_benchmarks(out, count: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists():
            try:
                if len(json.loads(out.read_text())["benchmarks"]) >= count:
                    return
            except (json.JSONDecodeError, KeyError):
                pytest.fail("the durable file was read half-written")  # it is renamed into place whole
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.05)
    pytest.fail(f"no {count} benchmarks in {out} within {timeout} s")


@pytest.mark.e2e
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_session_leaves_every_benchmark_it_finished(synthetic_data_dir, tmp_path, sig, capsys):
    out = tmp_path / "run.json"
    process = start_session(synthetic_data_dir, out)
    wait_for_benchmarks(out, 2, process)
    process.send_signal(sig)
    printed, _ = process.communicate(timeout=120)
    document = json.loads(out.read_text())  # valid, strict JSON
    names = [bench["name"] for bench in document["benchmarks"]]
    assert len(names) >= 2 and len(names) < 6 and document["fitbench"]["partial"] is True
    assert names == [f"test_many[cpu-batch_size-{b}]" for b in (50, 60, 70, 80, 90, 100)][:len(names)]
    # The test the signal interrupted is not a result: every entry has its record.
    assert all(bench["extra_info"].get("epochs") for bench in document["benchmarks"])
    if sig == signal.SIGTERM:  # ends as Ctrl-C does: the summary, and pytest's interrupted status
        assert process.returncode == 2 and "fitbench summary" in printed and "KeyboardInterrupt" in printed
    run = load_run(out)
    assert run.partial and "(partial)" in run.label
    # fitbench compare and report read it: a partial run against itself compares.
    assert cli.main(["compare", str(out), str(out), "--run-noise", "0"]) == 0
    assert cli.main(["report", str(out), "-o", str(tmp_path / "report"), "--benchmarks", MANY]) == 0
    assert "(partial)" in (tmp_path / "report" / "report.md").read_text()
    capsys.readouterr()


@pytest.mark.e2e
def test_a_finished_session_is_not_partial_and_its_autosave_keeps_its_number(synthetic_data_dir, tmp_path):
    from tests.helpers import run_pytest

    storage = tmp_path / "storage"
    for _ in range(2):
        run = run_pytest("tests/sample/bench_tiny.py", *OPTIONS, "--data-dir", str(synthetic_data_dir),
                         "--profile", "smoke", f"--benchmark-storage={storage}", "--benchmark-autosave")
        assert run.returncode == 0, run.stdout + run.stderr
    files = sorted(path.name for path in storage.rglob("*.json"))
    assert [name[:5] for name in files] == ["0001_", "0002_"]  # the partial copies did not take a number
    assert not json.loads(next(storage.rglob("0002_*.json")).read_text())["fitbench"]["partial"]


@pytest.mark.e2e
def test_sessions_started_together_in_one_storage_never_overwrite_each_other(synthetic_data_dir, tmp_path):
    """Three sessions with --benchmark-autosave into one storage folder, started at the same
    instant: three runs saved under three numbers, each whole, and no partial copy left."""
    storage = tmp_path / "storage"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    command = [sys.executable, "-m", "pytest", "tests/sample/bench_tiny.py", *OPTIONS, "--data-dir",
               str(synthetic_data_dir), "--profile", "smoke", f"--benchmark-storage={storage}", "--benchmark-autosave"]
    sessions = [subprocess.Popen(command, cwd=ROOT, env=clean, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True) for _ in range(3)]
    for session in sessions:
        printed = session.communicate(timeout=300)[0]
        assert session.returncode == 0, printed
    saved = sorted(storage.rglob("*.json"))
    assert [path.name[:5] for path in saved] == [f"{n:04}_" for n in range(1, 4)], [p.name for p in saved]
    for path in saved:
        document = json.loads(path.read_text())
        assert not document["fitbench"]["partial"] and len(document["benchmarks"]) == 1


@pytest.mark.e2e
def test_a_partial_copy_takes_no_number_and_is_named_for_its_session(synthetic_data_dir, tmp_path):
    out = tmp_path / "run.json"
    storage = tmp_path / "storage"
    process = start_session(synthetic_data_dir, out, f"--benchmark-storage={storage}", "--benchmark-autosave")
    wait_for_benchmarks(out, 1, process)
    # The session writes --benchmark-json, then its partial copy: a kill between the two
    # leaves the first only (seen once in CI), so the test waits for both.
    deadline = time.monotonic() + 60
    while not list(storage.rglob("partial_*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.communicate(timeout=60)
    (copy,) = storage.rglob("*.json")
    assert copy.name.startswith("partial_") and f"_{process.pid}_" in copy.name
    assert json.loads(copy.read_text())["fitbench"]["partial"] is True
    assert load_run(copy).partial  # fitbench's tools read it, marked partial


@pytest.mark.e2e
def test_xdist_writes_the_json_from_its_workers(synthetic_data_dir, tmp_path):
    from tests.helpers import run_pytest

    out = tmp_path / "run.json"
    # Three benchmarks over two workers: each worker's rows reach the one JSON.
    run = run_pytest(MANY, *OPTIONS, "--data-dir", str(synthetic_data_dir), "--profile", "smoke", "-n", "2",
                     "-k", "50 or 60 or 70", f"--benchmark-json={out}")
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads(out.read_text())
    assert len(document["benchmarks"]) == 3 and not document["fitbench"]["partial"]
    for bench in document["benchmarks"]:
        assert bench["extra_info"]["measurement"]["concurrent"] == 2
        assert bench["stats"]["rounds"] == 7 and len(bench["stats"]["data"]) == 7
    assert "2 trainings shared this machine at once" in run.stdout
    assert len(load_run(out).records) == 3
    # A serial run is another measurement: incomparable, never a regression.
    serial = tmp_path / "serial.json"
    assert run_pytest(MANY, *OPTIONS, "--data-dir", str(synthetic_data_dir), "--profile", "smoke", "-k", "50",
                      f"--benchmark-json={serial}").returncode == 0
    assert cli.main(["compare", str(serial), str(out)]) == 2


@pytest.mark.e2e
def test_a_diverging_optimizer_fails_with_its_message_and_stops(synthetic_data_dir, tmp_path):
    from tests.helpers import run_pytest

    out = tmp_path / "run.json"
    run = run_pytest("tests/sample/bench_diverge.py", *OPTIONS, "--data-dir", str(synthetic_data_dir),
                     "--profile", "smoke", f"--benchmark-json={out}")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "2 failed, 1 passed" in run.stdout  # the session went on
    line = next(line for line in run.stdout.splitlines() if "diverged at epoch" in line)
    assert "diverged at epoch 1: loss nan (tiny-learning-rate, batch size 64, SGD (learning rate 1e+12), cpu)" in line
    # A finite loss that explodes is divergence too, measured against the loss before training.
    exploded = next(line for line in run.stdout.splitlines() if "learning rate 10000" in line)
    assert re.search(r"diverged at epoch 1: loss \S+e\+\d+ \(\S+x its loss before training, 2\.\d+; the limit is "
                     r"Workload.loss_explosion = 1000x\)", exploded), exploded
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    records = {record.case: record for record in load_run(out).records}
    diverged = records["sgd-1e12"]
    assert diverged.status == "diverged" and diverged.failure.startswith("diverged at epoch 1")
    assert len(diverged.epochs) == 1 and math.isnan(diverged.epochs[0].loss)  # stopped at once
    assert diverged.measurement.workload["optimizer"]["config"]["learning_rate"] == pytest.approx(1e12, rel=1e-6)
    assert records["adam"].status == "completed" and records["sgd-1e4"].status == "diverged"
    assert "diverged" in run.stdout.split("fitbench summary", 1)[1]
    # The gate calls a candidate that diverged failed, and exits 1.
    baseline = tmp_path / "baseline.json"
    document = json.loads(text)
    document["fitbench"]["records_without_rounds"] = []
    baseline.write_text(json.dumps(document))
    assert cli.main(["compare", str(baseline), str(out), "--allow-missing"]) == 1


@pytest.mark.e2e
def test_out_of_memory_fails_that_test_alone_and_the_session_goes_on(synthetic_data_dir, tmp_path):
    from tests.helpers import run_pytest

    run = run_pytest(MANY, *OPTIONS, "--data-dir", str(synthetic_data_dir), "--profile", "smoke",
                     "-p", "tests.plugins.oom", "--oom-at-batch", "90")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "2 failed, 4 passed" in run.stdout
    line = next(line for line in run.stdout.splitlines() if "out of memory at batch size 90" in line)
    assert "host peak RSS" in line and "limit" in line and "ResourceExhaustedError" in line


@pytest.mark.parametrize("before, now, address_space, limit, clue", [
    (0, 1, None, 2_000_000_000, "the kernel's OOM killer ended 1 process(es) in this session's memory cgroup "
                                "(limit 2.0 GB)"),
    (0, 0, 3_000_000_000, 3_000_000_000, "an address-space limit of 3.0 GB is set (ulimit -v, prlimit --as)"),
    (None, None, None, 4_000_000_000, "memory limit 4.0 GB (cgroup)"),
    (None, None, None, 950_000_000, "memory limit 0.95 GB (cgroup)"),  # not rounded to 0.9
    (None, None, None, None, "no memory limit is set"),
])
def test_a_crash_names_the_memory_limit_in_force(before, now, address_space, limit, clue):
    from fitbench.plugin import crashes

    assert clue in crashes.memory_clue(before, now, address_space, limit)


@pytest.mark.parametrize("status, how", [
    (-6, "was killed by SIGABRT (a native abort"), (-9, "was killed by SIGKILL (the kernel's OOM killer"),
    (-11, "was killed by SIGSEGV"), (3, "exited with status 3"), (None, "died"),
])
def test_a_crash_says_how_the_process_died(status, how):
    from fitbench.plugin import crashes

    assert crashes.how_it_died(status).startswith(how)


@pytest.mark.e2e
def test_replicas_that_do_not_divide_a_batch_skip_naming_the_option(synthetic_data_dir):
    from tests.helpers import run_pytest

    # A real session skips it at collection, before anything trains (training over logical CPU
    # replicas is tested in test_integration.py).
    run = run_pytest(MANY, *OPTIONS, "--data-dir", str(synthetic_data_dir), "--profile", "smoke", "-k", "70",
                     "--cpu-replicas", "3", "-rs")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 skipped" in run.stdout and "passed" not in run.stdout
    assert "global batch size 70 does not divide over 3 replicas (--cpu-replicas 3)" in run.stdout


def test_results_are_readable_like_any_file_the_user_writes(tmp_path):
    import os
    import stat

    from fitbench.compare.results import write_atomically

    previous = os.umask(0o022)
    try:
        write_atomically(tmp_path / "run.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "run.json").stat().st_mode) == 0o644


def test_replicas_that_do_not_divide_a_batch_are_known_at_collection():
    from types import SimpleNamespace

    from fitbench.plugin.collect import undivided_batch
    from tests.helpers import TINY

    def config(replicas):
        options = {"cpu_replicas": replicas, "batch_per_worker": False}
        return SimpleNamespace(getoption=lambda name, default=None: options.get(name, default))

    case = SimpleNamespace(workload=TINY.but(batch_size=70))
    assert undivided_batch(config(3), case, "cpu") == (
        "global batch size 70 does not divide over 3 replicas (--cpu-replicas 3); use a replica count that "
        "divides it, such as 2 or 4")
    assert undivided_batch(config(2), case, "cpu") is None and undivided_batch(config(3), case, "gpu") is None


@pytest.mark.e2e
def test_user_code_that_raises_fails_in_one_line_naming_the_function(synthetic_data_dir):
    from tests.helpers import run_pytest

    run = run_pytest("tests/sample/bench_raises.py", *OPTIONS, "--data-dir", str(synthetic_data_dir),
                     "--profile", "smoke")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "2 failed" in run.stdout
    assert "broken_model(input_shape=(28, 28), units=(16,), classes=10) raised ValueError: a layer was given " \
        "units=-1" in run.stdout, run.stdout
    assert "missing_data raised FileNotFoundError: my_data.csv" in run.stdout, run.stdout
    assert "Traceback" not in run.stdout and "Benchmark fixture was not used" not in run.stdout + run.stderr


@pytest.mark.e2e
def test_a_disk_that_fills_up_loses_nothing_saved_and_says_so_in_one_line(synthetic_data_dir, tmp_path):
    """Every write after the first fails with ENOSPC: the JSON written after the first test stays
    whole (the final write went through a temporary file), the session says what it could not
    write and what it kept, and exits 1. With nothing writable, it says nothing was kept."""
    from tests.helpers import run_pytest

    out = tmp_path / "run.json"
    full = ("-p", "tests.plugins.full_disk", "--profile", "smoke", "-k", "50 or 60")
    run = run_pytest(MANY, *OPTIONS, "--data-dir", str(synthetic_data_dir), *full, f"--benchmark-json={out}",
                     "--full-disk-after", "1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "2 passed" in run.stdout and "INTERNALERROR" not in run.stdout + run.stderr
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("fitbench: could not save the results")]
    assert f"{out}: No space left on device; kept: {out} (the benchmarks up to the last one" in line, line
    document = json.loads(out.read_text())  # whole: the first test's results, marked partial
    assert len(document["benchmarks"]) == 1 and document["fitbench"]["partial"]

    storage = tmp_path / "storage"
    run = run_pytest(MANY, *OPTIONS, "--data-dir", str(synthetic_data_dir), *full, f"--benchmark-storage={storage}",
                     "--benchmark-autosave", "--full-disk-after", "0")
    assert run.returncode == 1, run.stdout + run.stderr
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("fitbench: could not save the results")]
    assert "No space left on device; nothing of this session was kept" in line, line
    assert not list(storage.rglob("*.json")) and "INTERNALERROR" not in run.stdout + run.stderr


@pytest.mark.e2e
def test_a_session_whose_only_test_diverged_saves_its_record_without_a_false_warning(synthetic_data_dir, tmp_path):
    from tests.helpers import run_pytest

    out = tmp_path / "run.json"
    run = run_pytest("tests/sample/bench_diverge.py", *OPTIONS, "--data-dir", str(synthetic_data_dir),
                     "--profile", "smoke", "-k", "sgd-1e12", f"--benchmark-json={out}")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Not saving anything" not in run.stdout + run.stderr  # the record was saved, by fitbench
    (record,) = load_run(out).records
    assert record.status == "diverged"
