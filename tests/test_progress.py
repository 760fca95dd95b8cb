"""Live progress: a line per epoch with the time left; TensorFlow's start-up noise filtered."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from fitbench.core.record import Epoch
from fitbench.measure import hardware, startup
from fitbench.measure.flops import EpochWork
from fitbench.present import progress
from tests.helpers import ROOT, run_pytest

SAMPLE = "tests/sample/bench_tiny.py"
SAMPLE_OPTIONS = ("-o", "python_files=bench_*.py", "--offline", "--require-data", "--devices", "cpu",
                  "--profile", "smoke")


def epoch(seconds: float, val: float = 0.5) -> Epoch:
    return Epoch(seconds=seconds, loss=1.0, metric=0.5, val_loss=1.0, val_metric=val)


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (45, "45 s"), (125, "2 min 05 s"), (3720, "1 h 02 min")])
def test_duration(seconds, text):
    assert progress.duration(seconds) == text


def test_time_left_for_the_test_and_the_session():
    lines, now = [], [0.0]
    session = progress.Progress(lines.append, pending={"a": progress.Pending(3), "b": progress.Pending(10)},
                                clock=lambda: now[0])
    on_epoch = session.test("a", 3)
    for seconds in (4.0, 2.0):
        now[0] += seconds
        on_epoch(epoch(seconds - 1))
    # Test: 1 epoch left at the last pace (2 s). Session: that, plus b's 10 epochs of unknown
    # work at the session's mean epoch so far (6 s / 2 epochs), plus the start-up seen so far
    # (the first epoch's 4 s against a steady 2 s).
    assert lines[-1] == "a epoch 2/3: 1.000 s, loss 1.0000, accuracy 0.500, val 0.500; left ~2 s test, ~34 s session"
    assert "(tracing included)" in lines[0]
    session.finished("a")
    assert list(session.pending) == ["b"]


def run_test(session: progress.Progress, now: list[float], test_id: str, epochs: int, first: float,
             steady: float) -> None:
    on_epoch = session.test(test_id, epochs)
    for seconds in [first] + [steady] * (epochs - 1):
        now[0] += seconds
        on_epoch(epoch(seconds))
    session.finished(test_id)


def test_the_session_left_weighs_each_tests_steps_and_flops_at_the_pace_fitted_so_far():
    # A machine where an epoch takes 1 ms a step plus 1 s per GFLOP, and each test's start-up
    # (building, tracing) costs 3 s more than a steady epoch.
    def seconds(work: EpochWork) -> float:
        return 1e-3 * work.steps + 1e-9 * work.flops

    small_batch, large_batch = EpochWork(steps=1000, flops=2e9), EpochWork(steps=100, flops=2e9)
    cnn = EpochWork(steps=100, flops=60e9)
    lines, now = [], [0.0]
    pending = {"b32": progress.Pending(5, small_batch), "b512": progress.Pending(5, large_batch),
               "cnn": progress.Pending(4, cnn), "own": progress.Pending(2)}
    session = progress.Progress(lines.append, pending=dict(pending), clock=lambda: now[0])
    run_test(session, now, "b32", 5, seconds(small_batch) + 3, seconds(small_batch))
    run_test(session, now, "b512", 5, seconds(large_batch) + 3, seconds(large_batch))
    per_step, rates, _ = session.pace.fit()
    assert per_step == pytest.approx(1e-3) and rates == {"": pytest.approx(1e-9)}
    assert session.pace.overhead == pytest.approx(3)
    # The CNN is 30x the MLPs' FLOPs: its 4 epochs at 60.1 s, plus its start-up; the user's own
    # test has no known work: its 2 epochs at the mean epoch so far.
    mean_epoch = (5 * seconds(small_batch) + 5 * seconds(large_batch) + 6) / 10
    assert session.later("none") == pytest.approx(4 * seconds(cnn) + 3 + 2 * mean_epoch + 3)



def test_a_test_with_a_twin_counts_both_trainings_though_its_lines_come_at_uneven_gaps():
    # A variant (2 s an epoch) and its twin (3 s) take turns in alternating order: variant |
    # twin (its first epoch), twin, variant | variant, twin | twin, variant. The variant's lines
    # come 3 s (after a 1 s start-up), 9 s, 2 s and 8 s apart; the twin reports its epochs.
    work = EpochWork(steps=200, flops=2e9, model="mlp", trainings=2)
    lines, now = [], [0.0]
    session = progress.Progress(lines.append, pending={"paired": progress.Pending(4, work)}, clock=lambda: now[0])
    on_epoch = session.test("paired", 4)

    def twin(seconds: float) -> None:
        now[0] += seconds
        on_epoch.twin(epoch(seconds))

    def variant(seconds: float) -> None:
        now[0] += seconds
        on_epoch(epoch(seconds))

    variant(1 + 2)
    # After its first epoch, which the twin has not trained yet: that epoch for each of the 7
    # trainings left (3 of its own, 4 of the twin's).
    assert "left ~21 s test" in lines[-1]
    twin(4), twin(3), variant(2)
    # 3 trainings in 9 s since the first line; 4 left (2 of each).
    assert "left ~12 s test" in lines[-1]
    variant(2)
    # 4 trainings in 11 s; 3 left (the twin's 3rd and 4th, its own 4th), not its last gap's 1.
    assert "left ~8 s test" in lines[-1]
    twin(3), twin(3), variant(2)
    assert "left ~0 s test" in lines[-1]
    # 7 trainings in 19 s since the first line; a steady epoch of both is two of them.
    assert session.pace.epoch_seconds(work) == pytest.approx(2 * 19 / 7)
    # Its start-up: the time to its last line beyond its 8 trainings at that pace.
    assert session.pace.overheads["paired"] == pytest.approx(22 - 8 * 19 / 7)


def test_a_model_seen_before_keeps_its_own_flop_rate_and_one_not_seen_is_taken_at_the_peak():
    # The MLPs run 100 GFLOP/s, the CNN 1,000 (large convolutions), the peak is 1,250; 1 ms a step.
    mlp_b32, mlp_b512 = EpochWork(1000, 2e9, "mlp"), EpochWork(100, 2e9, "mlp")
    cnn, other_cnn = EpochWork(100, 60e9, "cnn"), EpochWork(200, 120e9, "cnn")
    peak = 1.25e12
    pace = progress.Pace()
    pace.observe("b32", mlp_b32, 1.0 + 0.02, peak)
    # One MLP test seen: its steps take what the peak's time for its FLOPs leaves over.
    assert pace.fit()[0] == pytest.approx((1.02 - 2e9 / peak) / 1000)
    pace.observe("b512", mlp_b512, 0.1 + 0.02, peak)
    assert pace.epoch_seconds(cnn, peak) == pytest.approx(0.1 + 60e9 / peak)  # not seen: at the peak
    pace.observe("cnn", cnn, 0.1 + 0.06, peak)
    assert pace.epoch_seconds(other_cnn, peak) == pytest.approx(0.2 + 0.12)
    assert pace.epoch_seconds(EpochWork(500, 4e9, "mlp"), peak) == pytest.approx(0.5 + 0.04)


def test_without_a_peak_one_test_seen_takes_the_flops_alone_and_no_cost_goes_negative():
    pace = progress.Pace()
    pace.observe("a", EpochWork(steps=100, flops=1e9), 2.0)
    assert pace.fit()[:2] == (0.0, {"": pytest.approx(2e-9)})
    # Two tests whose steps and FLOPs would need a negative step cost (exactly -0.01 s).
    pace.observe("b", EpochWork(steps=300, flops=2e9), 3.0)
    per_step, rates, _ = pace.fit()
    assert per_step >= 0 and all(rate >= 0 for rate in rates.values())


def test_a_worker_knows_only_its_test_and_says_so_with_its_id():
    lines = []
    on_epoch = progress.Progress(lines.append, pending=None, prefix="[gw1] ").test("mod.py::t[x]", 2)
    on_epoch(epoch(1.0, val=math.nan))
    assert lines[0].startswith("[gw1] t[x] epoch 1/2:") and "session" not in lines[0] and "val" not in lines[0]


@pytest.mark.e2e
def test_a_session_prints_each_epoch_and_q_keeps_it_quiet(synthetic_data_dir):
    run = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), isolate=True)
    assert run.returncode == 0, run.stdout + run.stderr
    # From the session's worker (crash isolation, the default), on stderr.
    lines = [line for line in run.stderr.splitlines() if " epoch " in line and "left ~" in line]
    epochs = len(lines)
    assert epochs >= 2 and lines[0].startswith("test_tiny[cpu] epoch 1/")
    assert lines[-1].startswith(f"test_tiny[cpu] epoch {epochs}/{epochs}:") and "session" in lines[-1]
    quiet = run_pytest(SAMPLE, *SAMPLE_OPTIONS, "--data-dir", str(synthetic_data_dir), "-q")
    assert quiet.returncode == 0 and " epoch 1/" not in quiet.stdout + quiet.stderr


START_UP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1795483980.648849    5039 port.cc:153] oneDNN custom operations are on.\n",
    "I0000 00:00:1795483980.688167    5039 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.\n",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n",
    "W0000 00:00:1795483980.688167    5039 something.cc:1] a warning\n",
    "E0000 00:00:1795483982.971463    5039 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error (303)\n",
    "E0000 00:00:1795483982.971463    5039 other.cc:9] a real error\n",
]


def test_start_up_lines_without_a_gpu_keep_real_errors_only():
    assert startup.kept_lines(START_UP, min_level=2, driver_present=False) == [START_UP[-1]]
    # A line without absl's prefix is dropped only as the continuation of a dropped record.
    other = "Traceback (most recent call last):\n"
    assert startup.kept_lines([START_UP[0], other], 2, False) == [other]
    assert startup.kept_lines([START_UP[-1], other], 2, False) == [START_UP[-1], other]


def test_a_cuinit_failure_is_kept_where_an_nvidia_driver_is_installed():
    assert startup.kept_lines(START_UP, min_level=2, driver_present=True) == START_UP[-2:]


def test_the_users_log_level_is_honoured():
    assert startup.kept_lines(START_UP, min_level=0, driver_present=False) == START_UP[1:5] + START_UP[-1:]


@pytest.mark.e2e
@pytest.mark.skipif(startup.nvidia_driver_present(), reason="this machine has an NVIDIA driver")
def test_no_tensorflow_start_up_line_reaches_a_cpu_only_user():
    code = "from fitbench.measure import startup; tf = startup.load(); print(len(tf.config.list_physical_devices()))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() >= "1"
    assert run.stderr == "", run.stderr
    # ... while an error TensorFlow logs later still does (a bad device string at op time).
    raising = code + "\nimport tensorflow as tf\ntry:\n    tf.constant(1) + tf.constant([1, 2, 3], dtype='float32')\n" \
                     "except Exception as error:\n    print('raised', type(error).__name__)"
    run = subprocess.run([sys.executable, "-c", raising], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "raised InvalidArgumentError" in run.stdout


class FakeThreading:
    """tf.config.threading of a TensorFlow whose runtime has (or has not) started."""

    def __init__(self, started: bool):
        self.started, self.intra, self.inter = started, 0, 0

    def get_intra_op_parallelism_threads(self):
        return self.intra

    def get_inter_op_parallelism_threads(self):
        return self.inter

    def set_intra_op_parallelism_threads(self, threads):
        if self.started:
            raise RuntimeError("Intra op parallelism cannot be modified after initialization.")
        self.intra = threads

    def set_inter_op_parallelism_threads(self, threads):
        if self.started:
            raise RuntimeError("Inter op parallelism cannot be modified after initialization.")
        self.inter = threads


def fake_tf(started: bool):
    from types import SimpleNamespace

    return SimpleNamespace(config=SimpleNamespace(threading=FakeThreading(started)))


def test_threads_size_both_pools_before_tensorflow_starts_and_say_why_not_after():
    tf = fake_tf(started=False)
    startup.set_threads(tf, 1)
    assert (tf.config.threading.intra, tf.config.threading.inter) == (1, 1)
    startup.set_threads(tf, 0)  # 0: TensorFlow's own default, nothing is set
    assert tf.config.threading.intra == 1
    with pytest.raises(startup.ThreadsError, match=r"--threads 2: TensorFlow had already started in this process"):
        startup.set_threads(fake_tf(started=True), 2)
    startup.set_threads(fake_tf(started=True), 0)  # nothing asked, nothing refused
    with pytest.raises(startup.ThreadsError, match=r"--threads -1: give 1 or more threads"):
        startup.load(-1)


def test_pools_sized_by_tensorflows_environment_variables_are_recorded_as_such(monkeypatch):
    # TensorFlow sizes a pool left at 0 from TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS, so
    # a session started with them trains on one thread and must not be recorded as the default.
    tf = fake_tf(started=False)
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    assert hardware.pool_threads(tf) == {"intra_op": 0, "inter_op": 0}
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "two")  # not a count: TensorFlow ignores it
    assert hardware.pool_threads(tf) == {"intra_op": 1, "inter_op": 0}
    startup.set_threads(tf, 3)  # --threads wins over the environment, as in TensorFlow
    assert hardware.pool_threads(tf) == {"intra_op": 3, "inter_op": 3}
