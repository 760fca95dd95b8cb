"""Why it is slower: steps profiled after the schedule (fitbench.measure.opprofile), read from
TensorFlow's XSpace, and two sides' profiles compared (fitbench.compare.explain)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from fitbench.cli import ab
from fitbench.compare import explain
from fitbench.compare.results import load_run
from fitbench.core.record import Record
from fitbench.measure import opprofile
from tests.helpers import benchmark, fitbench_cli, write

# The profiled run is a child process of its own: TensorFlow's profiler keeps process-wide state
# (its tracers, the threadpool listeners), and a test worker runs hundreds of other tests after.
PROFILED_RUN = """
import json, sys
import tensorflow as tf
from fixtures import datasets as suite_datasets
from fitbench import Variant
from fitbench.measure import datasets, devices, runner
from tests.helpers import TINY, RecordingBenchmark

suite_datasets.register()
variant, data, folder = Variant(**json.loads(sys.argv[1])), sys.argv[2], sys.argv[3]
recording = RecordingBenchmark()
started_in_round = []
start = tf.profiler.experimental.start
tf.profiler.experimental.start = lambda *a, **k: (started_in_round.append(recording.in_round), start(*a, **k))[1]
dataset = datasets.load("fashion_mnist", data, allow_download=False)
record = runner.train(TINY.but(variant=variant), "default", devices.resolve("cpu"), dataset, recording,
                      explain=runner.Explain(6, __import__("pathlib").Path(folder)))
print(json.dumps({"record": record.to_json(), "started_in_round": started_in_round, "rounds": recording.rounds}))
"""


@pytest.mark.parametrize("variant", [{}, {"pipeline": "numpy"}, {"steps_per_execution": 2}],
                         ids=["tf.data", "numpy", "2-steps-per-call"])
def test_profiled_steps_come_after_the_timed_rounds_and_are_read_op_by_op(synthetic_data_dir, tmp_path, variant):
    import subprocess
    import sys

    from tests.helpers import ROOT

    done = subprocess.run([sys.executable, "-c", PROFILED_RUN, json.dumps(variant), str(synthetic_data_dir),
                           str(tmp_path / "profile")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    record = Record.from_json(outcome["record"])
    profile = record.op_profile
    assert "error" not in profile, profile
    assert outcome["started_in_round"] and not any(outcome["started_in_round"])  # never inside a timed round
    assert outcome["rounds"] == 3 and len(record.epochs) == 4  # the schedule's figures are untouched
    per_call = variant.get("steps_per_execution", 1)
    assert profile["steps"] == -(-6 // per_call) and profile["steps_per_call"] == per_call
    chunks = -(-profile["steps"] // opprofile.CHUNK)  # a profiler session of up to CHUNK calls each
    assert len(list((tmp_path / "profile").rglob("*.xplane.pb"))) == chunks
    assert set(profile["phases"]) == set(opprofile.PHASES)
    matmuls = sum(np.mean(v) for t, v in profile["op_types"].items() if explain.family(t) == "MatMul")
    assert matmuls > 0
    assert np.mean(profile["phases"]["optimizer"]) > 0  # Adam's updates, in the optimizer's scope
    for step, other in zip(profile["step_seconds"], profile["phases"]["other"], strict=True):
        assert 0 <= other <= step


def _space(device_ops: bool = False) -> xplane_pb2.XSpace:
    """Two steps of 10 ms: a 4 ms MatMul and a 1 ms SGD update in each, a 2 ms input wait in the
    second; with `device_ops`, a GPU plane whose kernels (named by their tf_op) are the ops."""
    space = xplane_pb2.XSpace()
    host = space.planes.add(name="/host:CPU")
    names = ["fitbench_step", "model/dense/MatMul:MatMul", "StatefulPartitionedCall/sgd/Mul:Mul",
             "IteratorGetNextOp::DoCompute", "ExecutorState::Process"]
    for number, name in enumerate(names, 1):
        host.event_metadata[number].id, host.event_metadata[number].name = number, name
    ms = 10 ** 9  # picoseconds
    python, compute = host.lines.add(name="python", timestamp_ns=1000), host.lines.add(name="tf_Compute/1",
                                                                                        timestamp_ns=1000)
    for step in range(2):
        origin = step * 10 * ms
        python.events.add(metadata_id=1, offset_ps=origin, duration_ps=10 * ms)
        compute.events.add(metadata_id=5, offset_ps=origin, duration_ps=6 * ms)  # a container: not an op
        compute.events.add(metadata_id=2, offset_ps=origin + 1 * ms, duration_ps=4 * ms)
        compute.events.add(metadata_id=3, offset_ps=origin + 5 * ms, duration_ps=1 * ms)
    compute.events.add(metadata_id=4, offset_ps=10 * ms + 7 * ms, duration_ps=2 * ms)
    # A map function's MatMul on tf.data's own thread, beside the first step: the pipeline's work.
    pipeline = host.lines.add(name="tf_data_private_threadpool/9", timestamp_ns=1000)
    pipeline.events.add(metadata_id=2, offset_ps=2 * ms, duration_ps=3 * ms)
    if device_ops:
        gpu = space.planes.add(name="/device:GPU:0")
        gpu.event_metadata[1].id, gpu.event_metadata[1].name = 1, "volta_sgemm_128x64_nn"
        gpu.event_metadata[2].id, gpu.event_metadata[2].name = 2, "MemcpyH2D"
        gpu.stat_metadata[1].id, gpu.stat_metadata[1].name = 1, "tf_op"
        # As TensorFlow's CUPTI collector writes it: the op's name kept once, as a stat metadata.
        gpu.stat_metadata[2].id, gpu.stat_metadata[2].name = 2, "model/dense/MatMul:MatMul"
        stream = gpu.lines.add(name="Stream #7(Compute)", timestamp_ns=1000)
        for step in range(2):
            kernel = stream.events.add(metadata_id=1, offset_ps=step * 10 * ms + 2 * ms, duration_ps=3 * ms)
            kernel.stats.add(metadata_id=1, ref_value=2)
            stream.events.add(metadata_id=2, offset_ps=step * 10 * ms + 1 * ms, duration_ps=500_000_000)
    return space


def test_an_xspace_is_read_into_seconds_per_step_by_phase_op_type_and_op():
    summary = opprofile.summarize([_space()], ["sgd"])
    assert summary["steps"] == 2 and summary["step_seconds"] == pytest.approx([0.010, 0.010])
    assert summary["op_types"]["MatMul"] == pytest.approx([0.004, 0.004])
    assert summary["phases"]["optimizer"] == pytest.approx([0.001, 0.001])
    assert summary["phases"]["compute"] == pytest.approx([0.004, 0.004])
    assert summary["phases"]["input"] == pytest.approx([0.0, 0.002])
    assert summary["phases"]["other"] == pytest.approx([0.005, 0.003])  # wall time outside the step's ops
    assert summary["phases"]["input pipeline"] == pytest.approx([0.003, 0.0])
    assert summary["op_types"]["tf.data:MatMul"] == pytest.approx([0.003, 0.0])  # not the model's MatMul
    assert "sgd/Mul:Mul" in summary["op_names"]  # the train function's wrapper dropped
    twice = opprofile.summarize([_space(), _space()], ["sgd"], steps_per_call=2)  # two chunks, 2 steps a call
    assert twice["steps"] == 4 and twice["op_types"]["MatMul"] == pytest.approx([0.002] * 4)


def test_on_a_gpu_the_device_planes_kernels_are_the_ops():
    summary = opprofile.summarize([_space(device_ops=True)], ["sgd"])
    assert summary["device_ops"]
    assert summary["op_types"]["MatMul"] == pytest.approx([0.003, 0.003])  # the kernel, named by its tf_op
    assert summary["phases"]["copies"] == pytest.approx([0.0005, 0.0005])
    assert "Mul" not in summary["op_types"]  # the host's kernel launches are not ops on a GPU
    assert summary["phases"]["input pipeline"] == pytest.approx([0.003, 0.0])  # the host's tf.data work stays


def test_a_profile_without_steps_is_a_clear_error():
    space = _space()
    space.planes[0].event_metadata[1].name = "something_else"
    with pytest.raises(opprofile.ProfileError, match="no 'fitbench_step' events"):
        opprofile.summarize([space], ["sgd"])


def _profile(rng, steps=20, matmul=0.010, optimizer=0.002, input_wait=0.0005, other=0.003, pipeline=0.001,
             session_spread=0.0):
    """Steps of a CPU profile with the machine's noise: each figure varies by 5% step to step, and
    by `session_spread` (log scale) from one session to the next, all of a session's steps alike."""
    def noisy(mean):
        return list(mean * rng.lognormal(0, session_spread) * rng.lognormal(0, 0.05, steps))
    phases = {"input": noisy(input_wait), "optimizer": noisy(optimizer), "other": noisy(other),
              "all-reduce": [0.0] * steps, "copies": [0.0] * steps, "input pipeline": noisy(pipeline)}
    forward, gradient = noisy(matmul * 0.4), noisy(matmul * 0.6)
    phases["compute"] = [f + g for f, g in zip(forward, gradient, strict=True)]
    step = [sum(values) for values in zip(*(phases[p] for p in opprofile.PHASES if p != "input pipeline"),
                                          strict=True)]
    optimizer_ops = phases["optimizer"]
    return {"steps": steps, "steps_per_call": 1, "step_seconds": step, "phases": phases,
            "op_types": {"_FusedMatMul": forward, "MatMul": gradient, "AssignSubVariableOp": optimizer_ops,
                         "tf.data:MatMul": phases["input pipeline"]},
            "op_names": {"mlp/dense/Relu:_FusedMatMul": forward, "gradient_tape/mlp/dense/MatMul:MatMul": gradient},
            "device_ops": False}


def _records(base_profile, cand_profile, base_flops=1000, cand_flops=1000):
    records = []
    for profile, flops in ((base_profile, base_flops), (cand_profile, cand_flops)):
        record = Record.from_json(benchmark("t[a]", [2.0, 1.0, 1.0])["extra_info"], name="t[a]")
        record.op_profile, record.flops_per_sample = profile, flops
        records.append(record)
    return records


@pytest.mark.parametrize(("planted", "first_line"), [
    ({"matmul": 0.014}, "MatMul family (MatMul, _FusedMatMul)"),
    ({"optimizer": 0.006}, "optimizer update"),
    ({"input_wait": 0.004}, "input (waiting for the input pipeline)"),
    # The pipeline's threads work beside the step: the step waits for part of their work only.
    ({"pipeline": 0.006, "input_wait": 0.003}, "input pipeline (the work of tf.data's threads)"),
])
def test_a_planted_cause_is_the_first_line_with_its_interval_and_share(planted, first_line):
    rng = np.random.default_rng(3)
    base, cand = _records(_profile(rng), _profile(rng, **planted))
    explanation = explain.explain("t[a]", base, cand)
    assert explanation.lines and explanation.lines[0].what.startswith(first_line), explanation.text()
    line = explanation.lines[0]
    assert line.low > 0 and line.share is not None and 0.5 < line.share <= (2.5 if "pipeline" in planted else 1.3)
    assert f"{line.share:.0%} of the slowdown" in explanation.text()[1]


def test_an_unchanged_pair_says_in_one_line_that_nothing_moved_beyond_the_noise():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        base, cand = _records(_profile(rng), _profile(rng))
        text = explain.explain("t[a]", base, cand).text()
        assert len(text) == 2 and text[1].strip().startswith("no phase or op family changed beyond the noise"), text


def test_a_model_that_does_more_work_is_split_into_work_and_time_per_flop():
    rng = np.random.default_rng(4)
    base, cand = _records(_profile(rng), _profile(rng, matmul=0.012), base_flops=1000, cand_flops=1200)
    explanation = explain.explain("t[a]", base, cand)
    assert explanation.work.startswith("more work: FLOPs per sample x1.20 (1,000 -> 1,200); time per FLOP x")
    assert explanation.text()[1].strip() == explanation.work


def test_a_side_without_a_profile_says_how_to_get_one():
    rng = np.random.default_rng(5)
    base, cand = _records(_profile(rng), None)
    assert "the candidate has no profile; run both sides with --explain-steps K" in explain.explain(
        "t[a]", base, cand).text()[0]
    base.op_profile = {"error": "no profile: UnavailableError: another profiler is running"}
    cand.op_profile = _profile(rng)
    assert "the baseline's no profile: UnavailableError" in explain.explain("t[a]", base, cand).text()[0]


def _profiled_runs(tmp_path, rng) -> tuple[str, str]:
    """A baseline and a candidate JSON whose profiles differ by a planted +40% in MatMul."""
    entries = []
    for profile in (_profile(rng), _profile(rng, matmul=0.014)):
        entry = benchmark("t[a]", [2.0, 1.0, 1.0])
        entry["extra_info"]["op_profile"] = profile
        entries.append(entry)
    return write(tmp_path / "base.json", [entries[0]]), write(tmp_path / "cand.json", [entries[1]])


def test_fitbench_explain_prints_writes_and_refuses_runs_without_profiles(tmp_path):
    base, cand = _profiled_runs(tmp_path, np.random.default_rng(6))
    done = fitbench_cli("explain", base, cand, "--json", str(tmp_path / "why.json"), "--markdown",
                        str(tmp_path / "summary.md"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("  MatMul family (MatMul, _FusedMatMul) +")
    assert json.loads((tmp_path / "why.json").read_text())["explanations"][0]["lines"][0]["what"].startswith("MatMul")
    assert "```" in (tmp_path / "summary.md").read_text()
    plain = write(tmp_path / "plain.json", [benchmark("t[a]", [2.0, 1.0, 1.0])])
    refused = fitbench_cli("explain", plain, plain, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("fitbench explain: no benchmark of these runs was profiled; run both sides "
                                      "with --explain-steps K (or fitbench ab --explain)")
    assert load_run(base).records[0].op_profile["steps"] == 20


def test_ab_explain_profiles_every_round_into_its_own_folder_and_owns_the_options(tmp_path):
    plan = ab.plan(None, None, None, None, ["X=1"], [], ["benchmarks"], str(tmp_path), 2, None, "alternate",
                   Path.cwd(), explain_steps=20)
    side = plan.sides[1]
    for number in (1, 2):
        folder = tmp_path.resolve() / "profiles" / "candidate" / f"round-{number}"
        assert plan.session_args(["benchmarks"], side, number) == [
            "benchmarks", "--explain-steps", "20", "--explain-dir", str(folder)]
    unexplained = ab.plan(None, None, None, None, ["X=1"], [], ["benchmarks"], str(tmp_path), 2, None, "alternate",
                          Path.cwd())
    assert unexplained.session_args(["benchmarks"], side, 1) == ["benchmarks"]
    # Without --rounds, --explain runs 3: a side's sessions then spread with 4 degrees of freedom.
    assert ab.plan(None, None, None, None, ["X=1"], [], ["benchmarks"], str(tmp_path), None, None, "alternate",
                   Path.cwd(), explain_steps=20).rounds == 3
    assert unexplained.rounds == 2 and ab.plan(None, None, None, None, ["X=1"], [], ["benchmarks"], str(tmp_path),
                                                None, None, "alternate", Path.cwd()).rounds == 2
    with pytest.raises(ab.ABError, match="give --explain .* before --"):
        ab.plan(None, None, None, None, ["X=1"], [], ["benchmarks", "--explain-steps", "5"], None, 2, None,
                "alternate", Path.cwd())


def test_the_readme_explanation_is_rewritten_from_runs_and_names_its_origin(tmp_path):
    from fitbench.cli.commands.explain import README_END, README_START

    base, cand = _profiled_runs(tmp_path, np.random.default_rng(7))
    readme = tmp_path / "README.md"
    readme.write_text(f"# intro\n\n{README_START}\nstale\n{README_END}\n\n## after\n")
    done = fitbench_cli("explain", base, cand, "--update-readme", str(readme), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = readme.read_text()
    assert "stale" not in text and text.startswith("# intro") and text.endswith("## after\n")
    body = text.split(README_START, 1)[1].split(README_END, 1)[0]
    assert body.lstrip().startswith("Measured on Test CPU")
    assert f"written by `fitbench explain {base} {cand} --update-readme {readme}`" in body
    assert "\n  MatMul family (MatMul, _FusedMatMul) +" in body
    bare = tmp_path / "BARE.md"
    bare.write_text("# none\n")
    refused = fitbench_cli("explain", base, cand, "--update-readme", str(bare), cwd=tmp_path)
    assert refused.returncode == 2 and "has no generated explanation section" in refused.stderr


def test_the_readme_shows_an_explanation_written_by_fitbench_explain():
    from fitbench.cli.commands.explain import README_END, README_START
    from tests.helpers import ROOT

    body = (ROOT / "README.md").read_text().split(README_START, 1)[1].split(README_END, 1)[0]
    assert body.lstrip().startswith("Measured on ") and "written by `fitbench explain " in body
    block = body.split("```\n", 1)[1].split("```", 1)[0].splitlines()
    assert block[0].startswith("test_batch_size[cpu-batch_size-") and "profiled steps)" in block[0]


def test_bisect_prints_the_first_bad_steps_explanation_under_it():
    from fitbench.cli import bisect

    culprit = bisect.Step(2, "abc", "abc1234 wider", bisect.BAD, "regression", ratio=1.2, ratio_low=1.1,
                          ratio_high=1.3, explanation=["t[a]: step 10 ms -> 12 ms", "  MatMul family +2 ms/step"])
    search = bisect.Search(first_bad="abc", first_bad_label="abc1234 wider", steps=[culprit])
    lines = search.describe()
    assert lines[0].startswith("first bad: abc1234 wider: epoch time x1.200")
    assert lines[1:] == ["  t[a]: step 10 ms -> 12 ms", "    MatMul family +2 ms/step"]
    assert search.as_dict()["steps"][0]["explanation"] == culprit.explanation


def test_a_commands_json_is_written_whole_or_said_in_one_line(tmp_path, capsys):
    from fitbench.cli.common import write_json

    assert write_json(tmp_path / "verdicts.json", {"a": 1})
    assert json.loads((tmp_path / "verdicts.json").read_text()) == {"a": 1}
    assert list(tmp_path.iterdir()) == [tmp_path / "verdicts.json"]  # no temporary file left
    (tmp_path / "file").write_text("")
    assert not write_json(tmp_path / "file" / "verdicts.json", {"a": 1})
    assert capsys.readouterr().err.startswith(f"fitbench: could not write {tmp_path / 'file' / 'verdicts.json'}: ")


def test_onednn_rewrites_of_a_kernel_belong_to_its_family():
    # On CPUs TensorFlow runs oneDNN's forms of the same kernels: one family with the plain ops.
    assert {explain.family(op) for op in ("MatMul", "_FusedMatMul", "_MklMatMul", "_MklNativeFusedMatMul",
                                          "_MklBatchMatMulV2")} == {"MatMul"}
    assert {explain.family(op) for op in ("Conv2DBackpropFilter", "_MklNativeConv2DBackpropFilter",
                                          "_MklNativeFusedConv2D", "_MklConv2D")} == {"Conv2D"}
    assert explain.family("_MklSoftmax") == "_MklSoftmax" and explain.family("Relu") == "Relu"


def _sessions(seed: int, count: int, session_spread: float, **planted) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    pairs = [_records(_profile(rng, session_spread=session_spread), _profile(rng, session_spread=session_spread,
                                                                             **planted)) for _ in range(count)]
    return [base for base, _ in pairs], [cand for _, cand in pairs]


def test_a_sessions_own_speed_is_noise_once_several_sessions_a_side_are_profiled():
    # Unchanged code, each line's speed drawn afresh per session (12%, as ops moved between
    # sessions of the user-model A/As): one session a side cannot tell that from a change, even
    # with its 15% floor; three a side judge each line against its spread between them.
    shown = {count: sum(bool(explain.explain("t[a]", *_sessions(seed, count, 0.12)).lines) for seed in range(40))
             for count in (1, 3)}
    assert shown[1] >= 8, shown  # about a third of these A/As name a line that did not change
    assert shown[3] <= 4, shown  # the family-wise 10%: about 4 of 40
    text = explain.explain("t[a]", *_sessions(1, 3, 0.12)).text()
    assert text[0].endswith("; 3 + 3 sessions, 60 + 60 profiled steps)"), text
    assert text[-1].strip().startswith("no phase or op family changed beyond their spread between sessions"), text


@pytest.mark.parametrize("count", [3, 4])
def test_a_planted_cause_is_still_named_first_against_the_spread_between_sessions(count):
    for seed in range(5):
        explanation = explain.explain("t[a]", *_sessions(seed, count, 0.05, matmul=0.014))
        assert explanation.between_sessions and explanation.lines, explanation.text()
        assert explanation.lines[0].what.startswith("MatMul family (MatMul, _FusedMatMul)"), explanation.text()


def test_fitbench_explain_pools_several_runs_a_side_one_session_each(tmp_path):
    rng = np.random.default_rng(8)
    paths = {"base": [], "cand": []}
    for number in range(2):
        for side, planted in (("base", {}), ("cand", {"optimizer": 0.006})):
            entry = benchmark("t[a]", [2.0, 1.0, 1.0])
            entry["extra_info"]["op_profile"] = _profile(rng, session_spread=0.05, **planted)
            paths[side].append(write(tmp_path / f"{side}-{number}.json", [entry]))
    done = fitbench_cli("explain", *paths["base"], paths["cand"][0], "--candidate-also", paths["cand"][1],
                        cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("; 2 + 2 sessions, 40 + 40 profiled steps)")
    assert lines[1].startswith("  optimizer update +")
