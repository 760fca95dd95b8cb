"""A crash fails one test, by default: a benchmark session trains in one pytest-xdist worker,
and pytest-benchmark measures, saves, compares and prints as in a plain session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fitbench.measure.memory import cgroup_memory_dirs
from fitbench.plugin import isolation
from tests.helpers import ROOT, SHARED_CACHE, run_pytest

OPTIONS = ("-o", "python_files=bench_*.py", "--offline", "--require-data", "--devices", "cpu", "--profile", "smoke")
TINY = "tests/sample/bench_tiny.py"
ISOLATED = "created: 1/1 worker"  # pytest-xdist's header line


@pytest.mark.parametrize("source, found", [
    ("EXPERIMENT = Experiment(title='t', workload=W)\n", True),
    ("EXPERIMENT: Experiment = make()\n", True),
    ("from x import EXPERIMENT as E\n", False),  # imported, not exported by this file
    ("def f():\n    EXPERIMENT = 1\n", False),  # not at module level
    ("text = 'EXPERIMENT = 1'\n", False),
    ("EXPERIMENT = (\n", False),  # not Python: pytest reports it, this does not decide on it
])
def test_a_benchmark_file_is_one_that_exports_an_experiment(tmp_path, source, found):
    path = tmp_path / "test_x.py"
    path.write_text(source)
    assert isolation.holds_experiment(path) is found


def test_benchmark_files_are_found_by_pytests_patterns_outside_skipped_folders(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "bench_a.py").write_text("EXPERIMENT = 1\n")
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "test_b.py").write_text("EXPERIMENT = 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_c.py").write_text("def test_c():\n    pass\n")
    assert isolation.finds_benchmarks([tmp_path], ["bench_*.py"], [".*"])
    assert not isolation.finds_benchmarks([tmp_path], ["test_*.py"], [".*"])  # .venv is not collected
    assert isolation.finds_benchmarks([tmp_path], ["test_*.py"], [])
    assert isolation.finds_benchmarks([tmp_path / "benchmarks" / "bench_a.py"], ["test_*.py"], [])  # named: collected
    assert not isolation.finds_benchmarks([tmp_path / "tests"], ["test_*.py", "bench_*.py"], [])


@pytest.mark.e2e
def test_a_benchmark_session_is_isolated_by_default_and_measures_as_a_plain_one(synthetic_data_dir, tmp_path):
    runs = {}
    for how, more in (("isolated", ()), ("plain", ("--no-isolate",))):
        out = tmp_path / f"{how}.json"
        run = run_pytest(TINY, *OPTIONS, "--data-dir", str(synthetic_data_dir), f"--benchmark-json={out}", *more,
                         isolate=True)
        assert run.returncode == 0, run.stdout + run.stderr
        runs[how] = (run, json.loads(out.read_text()))
    (isolated, isolated_json), (plain, plain_json) = runs["isolated"], runs["plain"]
    assert ISOLATED in isolated.stdout and ISOLATED not in plain.stdout
    # pytest-benchmark measured in the worker: its own rounds and options, its table in the controller.
    (mine,), (theirs,) = isolated_json["benchmarks"], plain_json["benchmarks"]
    assert mine.keys() == theirs.keys() and mine["stats"].keys() == theirs["stats"].keys()
    assert mine["options"] == theirs["options"] and mine["stats"]["rounds"] == theirs["stats"]["rounds"]
    # The same rounds: the runner's clock and pytest-benchmark's around the same epoch.
    assert [epoch["seconds"] for epoch in mine["extra_info"]["epochs"][1:]] == pytest.approx(
        mine["stats"]["data"], abs=0.005)
    assert mine["extra_info"]["measurement"] == theirs["extra_info"]["measurement"]  # like with like
    assert "benchmark 'tiny': 1 tests" in isolated.stdout and "fitbench summary" in isolated.stdout
    assert isolated_json["fitbench"]["peak_gflops"] == plain_json["fitbench"]["peak_gflops"] != {}
    # The epoch lines come from the worker (its stderr), as the plain session's, with the time left.
    lines = [line for line in isolated.stderr.splitlines() if line.startswith("test_tiny[cpu] epoch ")]
    assert len(lines) == mine["stats"]["rounds"] + 1 and "session" in lines[-1]


@pytest.mark.e2e
def test_compare_and_compare_fail_work_in_an_isolated_session(synthetic_data_dir, tmp_path):
    storage = tmp_path / "storage"
    options = (TINY, *OPTIONS, "--data-dir", str(synthetic_data_dir), f"--benchmark-storage={storage}")
    saved = run_pytest(*options, "--benchmark-autosave", isolate=True)
    assert saved.returncode == 0 and ISOLATED in saved.stdout, saved.stdout + saved.stderr
    (path,) = storage.rglob("0001_*.json")
    assert json.loads(path.read_text())["benchmarks"][0]["name"] == "test_tiny[cpu]"
    compared = run_pytest(*options, "--benchmark-compare", "--benchmark-compare-fail=mean:1000%", isolate=True)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    # Said once, by the controller, which compares (the worker does not load the run too).
    assert (compared.stdout + compared.stderr).count("Comparing against benchmarks from: ") == 1
    assert "test_tiny[cpu] (0001_" in compared.stdout and "test_tiny[cpu] (NOW)" in compared.stdout
    # A planted slowdown of 20x is past a 100% allowance: pytest-benchmark's own check fails the
    # session. Not 4x: under the load of two suites at once (2026-11-30) 4x once passed that
    # check, so the baseline's fastest epoch was over 2x the slowed run's fastest training.
    failed = run_pytest(*options, "--benchmark-compare", "--benchmark-compare-fail=min:100%",
                        "-p", "tests.plugins.slowdown", "--plant-slowdown", "19", isolate=True)
    assert failed.returncode != 0 and "Performance has regressed" in failed.stdout + failed.stderr


@pytest.mark.parametrize("more, reason", [(("--no-isolate",), "--no-isolate"), (("-s",), "-s: "),
                                          (("-n", "0"), "-n 0")])
@pytest.mark.e2e
def test_a_session_stays_in_its_own_process_when_asked_and_says_so(synthetic_data_dir, more, reason):
    run = run_pytest(TINY, *OPTIONS, "--data-dir", str(synthetic_data_dir), *more, isolate=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert ISOLATED not in run.stdout
    (note,) = [line for line in run.stdout.splitlines() if line.startswith("fitbench: trains in this process (")]
    assert reason in note and note.endswith("a native crash or the OOM killer ends the session")


@pytest.mark.e2e
def test_a_session_without_benchmark_files_is_not_isolated(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert True\n")
    run = run_pytest(str(tmp_path / "test_plain.py"), isolate=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert ISOLATED not in run.stdout and "1 passed" in run.stdout


@pytest.mark.e2e
def test_a_native_crash_fails_that_test_alone_by_default(synthetic_data_dir, tmp_path):
    out = tmp_path / "run.json"
    run = run_pytest("tests/sample/bench_crash.py", *OPTIONS, "--data-dir", str(synthetic_data_dir),
                     f"--benchmark-json={out}", isolate=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout, run.stdout
    (verdict,) = [line for line in run.stdout.splitlines() if line.startswith("crashed: ")]
    assert "(gw0) was killed by SIGABRT (a native abort" in verdict and "while running test_crash[cpu-abort]" in verdict
    assert "memory limit" in verdict and "goes on in a new worker" in verdict
    (bench,) = json.loads(out.read_text())["benchmarks"]
    assert bench["name"] == "test_crash[cpu-trains]" and bench["stats"]["rounds"] >= 2


@pytest.mark.e2e
def test_a_worker_that_dies_before_any_test_ends_the_session_instead_of_restarting_forever(synthetic_data_dir):
    # The file segfaults in every worker as it collects, so every new worker would die the same
    # way: the session ends after the first, in one line.
    run = run_pytest("tests/sample/bench_segv_import.py", *OPTIONS, "--data-dir", str(synthetic_data_dir),
                     isolate=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 2, output
    assert "replacing crashed worker" not in output
    (line,) = [line for line in run.stdout.splitlines() if "before it started any test" in line]
    assert "(gw0) was killed by SIGSEGV (a segmentation fault in native code)" in line
    assert "a new worker would die the same way, so the session ends here" in line


@pytest.mark.e2e
def test_a_model_that_segfaults_when_built_fails_its_own_case_and_the_next_case_trains(synthetic_data_dir,
                                                                                       tmp_path):
    # No model is built at collection (the time left reads an earlier session's figures), so
    # the model that segfaults kills its worker in its own test only; a new worker trains the rest.
    out = tmp_path / "run.json"
    run = run_pytest("tests/sample/bench_segv_model.py", *OPTIONS, "--data-dir", str(synthetic_data_dir),
                     f"--benchmark-json={out}", isolate=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout, run.stdout
    (verdict,) = [line for line in run.stdout.splitlines() if line.startswith("crashed: ")]
    assert "killed by SIGSEGV" in verdict and "while running test_segv[cpu-segv]" in verdict, verdict
    (bench,) = json.loads(out.read_text())["benchmarks"]
    assert bench["name"] == "test_segv[cpu-trains]" and bench["extra_info"]["status"] == "completed"


def memory_cgroup(limit_bytes: int) -> Path | None:
    """A new memory cgroup below this process's own (the first of its memory cgroups that takes
    children with a limit: v1, or v2 with the memory controller delegated), or None where this
    machine does not let the test make one."""
    for parent in cgroup_memory_dirs():
        if (parent / "memory.limit_in_bytes").exists():
            limit_file = "memory.limit_in_bytes"
        elif "memory" in read_or_empty(parent / "cgroup.subtree_control").split():
            limit_file = "memory.max"
        else:
            continue
        child = parent / f"fitbench-test-{os.getpid()}-{time.monotonic_ns()}"
        try:
            child.mkdir()
            (child / limit_file).write_text(str(limit_bytes))
        except OSError:
            if child.is_dir():
                child.rmdir()
            return None
        return child
    return None


def read_or_empty(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@pytest.mark.e2e
def test_a_test_the_oom_killer_ends_fails_alone_with_the_cgroups_limit(synthetic_data_dir, tmp_path):
    """The kernel's OOM killer, for real: the session runs in a memory cgroup limited to 1.5 GB
    (a tiny session trains in well under that); one case takes memory until it is killed."""
    cgroup = memory_cgroup(1_500_000_000)
    if cgroup is None:
        pytest.skip("this machine does not let the test make a memory cgroup (root and cgroup v1, or a "
                    "delegated v2 memory controller, are needed)")
    out = tmp_path / "run.json"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    try:
        run = subprocess.run(  # the shell joins the cgroup, then becomes the session
            ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup / "cgroup.procs"), sys.executable, "-m", "pytest",
             *SHARED_CACHE, "tests/sample/bench_oom.py", *OPTIONS, "--data-dir", str(synthetic_data_dir),
             f"--benchmark-json={out}"],
            cwd=ROOT, env=clean, capture_output=True, text=True, timeout=600)
    finally:
        for _ in range(50):  # the cgroup can be removed once its last process has gone
            try:
                cgroup.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout, run.stdout
    (verdict,) = [line for line in run.stdout.splitlines() if line.startswith("crashed: ")]
    assert "(gw0) was killed by SIGKILL (the kernel's OOM killer" in verdict, verdict
    assert "while running test_oom[cpu-hog]" in verdict and "goes on in a new worker" in verdict, verdict
    assert "the kernel's OOM killer ended 1 process(es) in this session's memory cgroup (limit 1.5 GB)" in verdict
    (bench,) = json.loads(out.read_text())["benchmarks"]
    assert bench["name"] == "test_oom[cpu-trains]" and bench["extra_info"]["status"] == "completed"


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.e2e
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the worker ends with its parent through prctl")
def test_a_worker_whose_controller_was_killed_does_not_train_on(synthetic_data_dir):
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", *SHARED_CACHE, TINY, *OPTIONS, "--data-dir", str(synthetic_data_dir),
         "-p", "tests.plugins.slowdown", "--plant-slowdown", "200"],  # 201x: about 6 s an epoch
        cwd=ROOT, env=clean, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in session.stderr:
            if " epoch 1/" in line:  # the worker trains
                break
        (worker,) = children(session.pid)
        assert running(worker)
        session.kill()
        session.wait(timeout=30)
        deadline = time.monotonic() + 5
        while running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(worker), "the worker trains on after its controller was killed"
    finally:
        session.kill()


@pytest.mark.e2e
def test_an_isolated_sessions_controller_holds_no_tensorflow(synthetic_data_dir, tmp_path):
    """The controller trains nothing: it never imports TensorFlow or Keras (about 540 MB saved
    on this VM), and still writes the worker's machine, software and peaks into the results."""
    probe, out = tmp_path / "probe.json", tmp_path / "run.json"
    run = run_pytest("benchmarks/test_batch_size.py", "-p", "tests.plugins.controller_probe", "--offline",
                     "--require-data", "--devices", "cpu", "--profile", "smoke", "-k", "batch_size-512",
                     "--data-dir", str(synthetic_data_dir), f"--benchmark-json={out}", isolate=True,
                     env={"FITBENCH_PROBE": str(probe)}, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    controller = json.loads(probe.read_text())
    assert not controller["tensorflow"] and not controller["keras"], controller
    assert controller["max_rss_mb"] < 300, controller  # it was 655 MB with TensorFlow
    document = json.loads(out.read_text())
    assert document["machine_info"]["tensorflow"] and document["machine_info"]["keras"]
    assert document["fitbench"]["peak_gflops"]["cpu"]["float32"] > 0
    assert "gpu, tpu: found by the training process" in run.stdout
    assert "absl::InitializeLog" not in run.stdout + run.stderr  # TensorFlow's start-up still filtered
