"""Clusters: reading TF_CONFIG and Slurm, the local launcher (a worker that dies or stops ends
them all, named), loss parity of 2 workers with 1, like with like, weak-scaling figures."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fitbench.compare import scaling
from fitbench.present import format as text_format
from fitbench.processes import cluster, launch
from fitbench.processes.cluster import ClusterError
from tests.helpers import ROOT, SHARED_CACHE, make_record, run_pytest

PYTHON = sys.executable


def config(workers: int = 2, index: int = 0, kind: str = "worker", chief: bool = False) -> str:
    spec = {"worker": [f"127.0.0.1:{9000 + i}" for i in range(workers)]}
    if chief:
        spec["chief"] = ["127.0.0.1:8999"]
    return json.dumps({"cluster": spec, "task": {"type": kind, "index": index}})


# --- what the cluster is ------------------------------------------------------------------------

def test_tf_config_names_the_workers_and_the_chief():
    found = cluster.detect(env={"TF_CONFIG": config(2, 1)})
    assert (found.workers, found.task_id, found.is_chief, found.source) == (2, 1, False, "TF_CONFIG")
    assert cluster.detect(env={"TF_CONFIG": config(2, 0)}).is_chief  # worker 0 without a chief task
    with_chief = cluster.detect(env={"TF_CONFIG": config(1, 0, chief=True)})
    assert with_chief.workers == 2 and not with_chief.is_chief
    assert cluster.detect(env={"TF_CONFIG": config(1, 0, "chief", chief=True)}).is_chief
    assert cluster.detect(env={}) is None and cluster.detect("none", {"TF_CONFIG": config()}) is None


@pytest.mark.parametrize("text, says", [
    ("{not json", "TF_CONFIG is not JSON"),
    (json.dumps({"cluster": {}, "task": {"type": "worker", "index": 0}}), "names no 'worker'"),
    (config(2, 5), "not one of its cluster's training tasks"),
    (config(2, 0, "ps"), "not one of its cluster's training tasks"),
])
def test_a_bad_tf_config_is_refused_with_the_fix(text, says):
    with pytest.raises(ClusterError, match=says):
        cluster.detect(env={"TF_CONFIG": text})


def test_slurm_job_steps_of_several_tasks_are_clusters():
    found = cluster.detect(env={"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "2"})
    assert (found.workers, found.task_id, found.source) == (4, 2, "Slurm")
    assert cluster.detect(env={"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}) is None
    with pytest.raises(ClusterError, match="srun -n N"):
        cluster.detect("slurm", env={})
    with pytest.raises(ClusterError, match="TF_CONFIG is not set"):
        cluster.detect("tf_config", env={})


def test_the_launchers_tf_config_round_trips_and_its_ports_are_distinct():
    ports = cluster.free_ports(3)
    assert len(set(ports)) == 3
    addresses = [f"127.0.0.1:{port}" for port in ports]
    assert cluster.from_tf_config(cluster.tf_config(addresses, 2)).name == "worker 2"


def test_a_lost_worker_is_named_from_tensorflows_error():
    message = ("{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:0/device:CPU:0}} "
               "Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks are "
               "unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed.")
    assert cluster.lost_worker(message) == "worker 1 (stopped sending heartbeats)"


def test_cores_are_split_evenly_and_overcommitment_is_refused():
    assert launch.assign_cores(2, None, [0, 1, 2, 3]) == [[0, 1], [2, 3]]
    assert launch.assign_cores(2, 1, [0, 1, 2, 3]) == [[0], [1]]
    with pytest.raises(launch.LaunchError, match="need 3 cores; this process may use 2"):
        launch.assign_cores(3, None, [0, 1])


def test_local_workers_get_disjoint_gpus():
    assert launch.local_gpus({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}) == ["0", "1", "2", "3"]
    assert launch.local_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert launch.assign_gpus(2, ["0", "1", "2", "3"]) == [["0", "1"], ["2", "3"]]
    assert launch.assign_gpus(2, []) is None  # CPUs only
    with pytest.raises(launch.LaunchError, match="2 workers need a GPU each; this machine has 1"):
        launch.assign_gpus(2, ["0"])


def test_each_worker_sees_only_its_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    launcher = launch.Launcher(["true"], 2, tmp_path, 1, say=lambda line: None)
    assert [launcher.environment(i, ["a", "b"])["CUDA_VISIBLE_DEVICES"] for i in (0, 1)] == ["4", "5"]


# --- the launcher: everyone ends, the culprit is named --------------------------------------------

SLEEPER = [PYTHON, "-c", "import os, time, json; time.sleep(30 if json.loads(os.environ['TF_CONFIG'])"
           "['task']['index'] else 30)"]


def _pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive


def _launch_and_kill(tmp_path: Path, sig: signal.Signals, stall: float = 60.0) -> tuple[int, list[str], list[int]]:
    lines: list[str] = []
    launcher = launch.Launcher(SLEEPER, 2, tmp_path, 1, stall_timeout=stall, grace=5, say=lines.append)
    original_start = launcher.start

    def start_then_signal():
        original_start()
        time.sleep(0.5)
        os.kill(launcher.workers[1].process.pid, sig)

    launcher.start = start_then_signal
    began = time.monotonic()
    status = launcher.run()
    assert time.monotonic() - began < 20  # not the sleepers' 30 s: the launcher ended them
    return status, lines, [worker.process.pid for worker in launcher.workers]


def test_a_killed_worker_ends_every_worker_and_is_named(tmp_path):
    status, lines, pids = _launch_and_kill(tmp_path, signal.SIGKILL)
    assert any("worker 1 (pid" in line and "was killed by SIGKILL" in line and "ending the other workers" in line
               for line in lines), lines
    assert status == 128 + signal.SIGKILL and not _pids_alive(pids)


def test_a_stopped_worker_counts_as_not_answering(tmp_path):
    status, lines, pids = _launch_and_kill(tmp_path, signal.SIGSTOP, stall=1.0)
    assert any("worker 1" in line and "stopped for 1 s (not answering)" in line for line in lines), lines
    assert status != 0 and not _pids_alive(pids)


def test_workers_that_end_normally_give_the_worst_status_and_each_ones_exit(tmp_path):
    command = [PYTHON, "-c", "import os, json, sys; sys.exit(json.loads(os.environ['TF_CONFIG'])['task']['index'])"]
    said: list[str] = []
    assert launch.Launcher(command, 2, tmp_path, 1, say=said.append).run() == 1
    assert said[-1] == ("fitbench workers: worker 0 (chief) exited with status 0 (passed); "
                        "worker 1 exited with status 1 (tests failed)")


def test_only_the_chief_takes_turns(tmp_path, monkeypatch):
    monkeypatch.setenv("FITBENCH_INTERLEAVE", "/ring:0")
    launcher = launch.Launcher(["true"], 2, tmp_path, 1, say=lambda line: None)
    assert "FITBENCH_INTERLEAVE" in launcher.environment(0, ["a", "b"])
    assert "FITBENCH_INTERLEAVE" not in launcher.environment(1, ["a", "b"])


def test_the_cli_names_a_missing_command(tmp_path):
    done = subprocess.run([PYTHON, "-m", "fitbench", "workers", "2"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "give the command each worker runs after --" in done.stderr


# --- correctness: 2 workers follow 1 worker's loss trajectory ------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("steps_per_execution", [1, 4])
def test_two_workers_follow_one_workers_losses(synthetic_data_dir, tmp_path, steps_per_execution):
    """2 workers at per-replica batch 100 against 1 process at global batch 200, same seed and
    data order (1,050 samples: the last batch is partial and split across the workers).
    Tolerance: 1e-5 relative. The same steps in float32 differ only in summation order (ring
    all-reduce of two halves against one batch's reduction): measured 1e-7. A real error
    (gradients not all-reduced, the loss scaled by the wrong replica count, a worker reading
    other batches) changes the first epoch's loss by 1e-2 or more."""
    worker = [PYTHON, "-m", "tests.cluster_worker", str(synthetic_data_dir), "200", str(steps_per_execution)]
    alone, pair = tmp_path / "one.json", tmp_path / "two.json"
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    subprocess.run([*worker, str(alone)], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    status = launch.Launcher([*worker, str(pair)], 2, tmp_path / "logs", 1, say=lambda line: None).run()
    assert status == 0, (tmp_path / "logs" / "worker-1.log").read_text()[-2000:]
    one, two = json.loads(alone.read_text()), json.loads(pair.read_text())
    assert one["measurement"] == {"workers": 1, "replicas": 1, "global_batch": 200, "per_replica_batch": 200}
    assert two["measurement"] == {"workers": 2, "replicas": 2, "global_batch": 200, "per_replica_batch": 100}
    for key in ("loss", "accuracy", "val_loss"):
        assert two[key] == pytest.approx(one[key], rel=1e-5), key
    assert one["loss"][-1] < one["loss"][0] * 0.8  # it learned: the parity is of real training
    assert two["test_accuracy"] == pytest.approx(one["test_accuracy"], abs=1e-6)


@pytest.mark.e2e
def test_weak_scaling_of_two_local_workers_end_to_end(synthetic_data_dir, tmp_path):
    """`fitbench workers 2 --scaling`: 1 and 2 single-core workers, the batch per worker, taking
    turns one timed epoch each; the efficiency is printed and written to the 2-worker run's JSON."""
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith("PYTEST_") and key != "TF_CONFIG"}
    logs = tmp_path / "scaling"
    run = subprocess.run([PYTHON, "-m", "fitbench", "workers", "2", "--scaling", "--logs", str(logs), "--",
                          "pytest", *SHARED_CACHE, "tests/sample/bench_tiny.py", "-o", "python_files=bench_*.py",
                          "--profile", "smoke", "--devices", "cpu", "--offline", "--require-data",
                          "--data-dir", str(synthetic_data_dir)],
                         cwd=ROOT, env=clean, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "weak-scaling efficiency" in run.stdout
    (figure,) = json.loads((logs / "workers-2.json").read_text())["fitbench"]["scaling"]
    assert figure["workers"] == 2 and figure["method"].startswith("interleaved")
    assert 0 < figure["low"] <= figure["efficiency"] <= figure["high"] and math.isfinite(figure["high"])


# --- like with like; weak scaling -----------------------------------------------------------------

def _cluster_record(workers: int, seconds: list[float], cores: int = 1, batch: int = 512, turns=None):
    record = make_record("test_batch_size[cpu-batch_size-512]", epoch_seconds=seconds, samples=60_000)
    measurement = dataclasses.replace(record.measurement, workers=workers, replicas=workers,
                                      global_batch=batch * workers, per_replica_batch=batch,
                                      cluster={"worker": workers, "cores_per_worker": cores})
    record = dataclasses.replace(record, measurement=measurement)
    if turns is not None:
        record.interleave = {"ring": "r", "index": turns[0], "size": 2}
        for epoch, turn in zip(record.epochs, turns[1], strict=True):
            epoch.turn = turn
    return record


def test_a_two_worker_run_is_never_compared_with_a_one_worker_run():
    one, two = _cluster_record(1, [2.0, 1.0, 1.0]), _cluster_record(2, [2.0, 1.0, 1.0])
    differences = one.measurement.differences(two.measurement)
    assert any(line.startswith("workers: 1 != 2") for line in differences)
    assert any(line.startswith("cluster.worker: 1 != 2") for line in differences)


def test_weak_scaling_efficiency_with_its_interval():
    one = _cluster_record(1, [3.0, 1.00, 1.02, 0.98, 1.01, 0.99, 1.00, 1.03, 0.97])
    two = _cluster_record(2, [3.0, 0.80, 0.82, 0.78, 0.81, 0.79, 0.80, 0.83, 0.77])
    (figure,) = scaling.weak_scaling([one], [two])
    # 2 workers take 0.8 of one worker's epoch time for the same samples: 1 / (2 x 0.8) = 62.5%.
    assert figure.efficiency == pytest.approx(0.625, rel=0.02)
    assert figure.low < figure.efficiency < figure.high and figure.method == "unpaired epochs"
    described = text_format.weak_scaling(figure)
    assert "weak-scaling efficiency 62% [" in described or "weak-scaling efficiency 63% [" in described


def test_interleaved_scaling_runs_are_paired_by_turn():
    one = _cluster_record(1, [3.0, 1.0, 1.2, 0.9, 1.1], turns=(0, [0, 2, 4, 6, 8]))
    two = _cluster_record(2, [3.0, 0.8, 0.96, 0.72, 0.88], turns=(1, [1, 3, 5, 7, 9]))
    (figure,) = scaling.weak_scaling([one], [two])
    assert figure.method == "interleaved, 4 epoch pairs" and figure.efficiency == pytest.approx(0.625)


def test_scaling_pairs_only_like_with_like():
    one = _cluster_record(1, [3.0, 1.0, 1.0, 1.0], cores=2)  # 2 cores for the lone worker: not weak scaling
    two = _cluster_record(2, [3.0, 0.8, 0.8, 0.8], cores=1)
    assert scaling.weak_scaling([one], [two]) == []
    (line,) = scaling.unpaired([one], [two])
    assert "no weak-scaling figure" in line


def test_scaling_is_written_to_the_runs_json(tmp_path):
    path = tmp_path / "two.json"
    path.write_text(json.dumps({"benchmarks": [], "fitbench": {"profile": "smoke"}}))
    one, two = _cluster_record(1, [3.0, 1.0, 1.0, 1.0]), _cluster_record(2, [3.0, 0.5, 0.5, 0.5])
    scaling.write(path, scaling.weak_scaling([one], [two]))
    written = json.loads(path.read_text())["fitbench"]
    assert written["profile"] == "smoke" and written["scaling"][0]["efficiency"] == pytest.approx(1.0)
    assert math.isfinite(written["scaling"][0]["low"])


# --- a whole pytest session as a 2-worker cluster -------------------------------------------------

@pytest.mark.e2e
def test_a_two_worker_session_writes_one_record_of_the_cluster(synthetic_data_dir, tmp_path):
    out, logs = tmp_path / "run.json", tmp_path / "logs"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    done = subprocess.run(
        [PYTHON, "-m", "fitbench", "workers", "2", "--cores-per-worker", "1", "--logs", str(logs), "--",
         PYTHON, "-m", "pytest", *SHARED_CACHE, "tests/sample/bench_tiny.py", "-o",
         "python_files=bench_*.py", "--offline", "--require-data", "--data-dir", str(synthetic_data_dir),
         "--devices", "cpu", "--profile", "smoke", f"--benchmark-json={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cluster: worker 0 (chief: writes the results) of a 2-worker cluster" in done.stdout
    (bench,) = json.loads(out.read_text())["benchmarks"]
    measurement = bench["extra_info"]["measurement"]
    assert (measurement["workers"], measurement["replicas"]) == (2, 2)
    assert measurement["cluster"] == {"worker": 2, "cores_per_worker": 1}
    assert measurement["per_replica_batch"] * 2 == measurement["global_batch"]
    other = (logs / "worker-1.log").read_text()
    assert "not the chief: writes no results" in other and "Wrote benchmark data" not in other
    assert " cpu/2w " in done.stdout  # the summary's device column


@pytest.mark.e2e
def test_a_cluster_session_refuses_xdist_and_cpu_replicas():
    tf_config = config(1, 0)
    refused = run_pytest("tests/sample/bench_tiny.py", "-n", "1", env={"TF_CONFIG": tf_config})
    assert refused.returncode == 4 and "cannot use pytest-xdist" in refused.stderr
    split = run_pytest("tests/sample/bench_tiny.py", "--cpu-replicas", "2", env={"TF_CONFIG": tf_config})
    assert split.returncode == 4 and "drop --cpu-replicas" in split.stderr
    bad = run_pytest("tests/sample/bench_tiny.py", env={"TF_CONFIG": "{not json"})
    assert bad.returncode == 4 and "TF_CONFIG is not JSON" in bad.stderr
