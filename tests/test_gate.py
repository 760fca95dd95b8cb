"""fitbench compare / the gate, on synthetic pytest-benchmark JSON with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fitbench import cli, gate
from fitbench.results import NotBenchmarkJSON, load_run

MACHINE = {"system": "Linux", "machine": "x86_64", "python": "3.11.7", "cpu_name": "Test CPU", "gpus": [],
           "tensorflow": "2.21.0", "keras": "3.15.1", "cpu": {"hz_actual": [2_100_000_000, 0]}}


def benchmark(name, epochs, accuracy=0.85, gate_marker=None, group="g"):
    return {"name": name, "group": group, "stats": {"data": epochs[1:]},
            "extra_info": {"experiment": name.split("[")[0], "case": "", "device": "cpu", "epoch_seconds": epochs,
                           "train_samples": 1000, "samples_per_epoch": 1000, "epochs": len(epochs),
                           "accuracy_metric": "test_accuracy", "test_accuracy": accuracy,
                           "accuracy_threshold": 0.8, "gate": gate_marker or {}}}


def epochs(seed, scale=1.0, first=2.0, rounds=9, noise=0.02):
    rng = np.random.default_rng(seed)
    return [first] + list(scale * rng.lognormal(0, noise, rounds))


def write(path, benchmarks, machine=None):
    path.write_text(json.dumps({"machine_info": {**MACHINE, **(machine or {})}, "commit_info": {"id": "abc"},
                                "datetime": "2026-11-23T00:00:00", "benchmarks": benchmarks}))
    return str(path)


def runs(tmp_path, base_benchmarks, cand_benchmarks, **machine):
    return (write(tmp_path / "base.json", base_benchmarks),
            write(tmp_path / "cand.json", cand_benchmarks, machine or None))


def verdicts(base, cand, **kwargs):
    comparison = gate.compare([load_run(base)], [load_run(cand)], **kwargs)
    return {v.name: v for v in comparison.verdicts}, comparison


def test_same_code_is_no_change(tmp_path):
    base, cand = runs(tmp_path, [benchmark(f"t[{i}]", epochs(i)) for i in range(5)],
                      [benchmark(f"t[{i}]", epochs(100 + i)) for i in range(5)])
    found, comparison = verdicts(base, cand)
    assert {v.verdict for v in found.values()} == {"no change"}
    assert not comparison.regressions


def test_planted_20_percent_is_a_regression_and_the_cli_exits_1(tmp_path, capsys):
    base, cand = runs(tmp_path, [benchmark("t[a]", epochs(1)), benchmark("t[b]", epochs(2))],
                      [benchmark("t[a]", epochs(3, scale=1.2)), benchmark("t[b]", epochs(4))])
    found, _ = verdicts(base, cand)
    assert found["t[a]"].verdict == "regression" and found["t[a]"].time == "regression"
    assert 1.15 < found["t[a]"].ratio < 1.25 and found["t[a]"].ratio_low > 1.05
    assert found["t[b]"].verdict == "no change"
    summary, verdict_json = tmp_path / "summary.md", tmp_path / "verdicts.json"
    code = cli.main(["compare", base, cand, "--markdown", str(summary), "--json", str(verdict_json)])
    assert code == 1
    assert "REGRESSION   t[a]" in capsys.readouterr().out
    assert "| `t[a]` | **regression** |" in summary.read_text()
    saved = json.loads(verdict_json.read_text())
    assert saved["counts"]["regression"] == 1 and saved["verdicts"][0]["name"] == "t[a]"


def test_a_slowdown_below_the_threshold_is_not_a_regression(tmp_path):
    base, cand = runs(tmp_path, [benchmark("t[a]", epochs(1, noise=0.005))],
                      [benchmark("t[a]", epochs(2, scale=1.03, noise=0.005))])
    found, _ = verdicts(base, cand)
    assert found["t[a]"].time != "regression"


def test_a_speedup_is_an_improvement(tmp_path):
    base, cand = runs(tmp_path, [benchmark("t[a]", epochs(1))], [benchmark("t[a]", epochs(2, scale=0.7))])
    assert verdicts(base, cand)[0]["t[a]"].verdict == "improvement"


def test_too_noisy_or_too_few_rounds_is_inconclusive(tmp_path):
    base, cand = runs(tmp_path, [benchmark("t[a]", epochs(1, rounds=2))],
                      [benchmark("t[a]", epochs(2, scale=1.3, rounds=2))])
    found, _ = verdicts(base, cand)
    assert found["t[a]"].verdict == "inconclusive" and "cannot reach significance" in found["t[a]"].note


def test_holm_keeps_a_lone_borderline_result_from_failing_a_large_run(tmp_path):
    # 4 vs 4 rounds: the smallest p is 1/70, significant alone but not over 20 benchmarks.
    base_b = [benchmark(f"t[{i}]", epochs(i, rounds=4)) for i in range(20)]
    cand_b = [benchmark(f"t[{i}]", epochs(50 + i, rounds=4, scale=1.3 if i == 0 else 1.0)) for i in range(20)]
    alone_base, alone_cand = write(tmp_path / "b1.json", base_b[:1]), write(tmp_path / "c1.json", cand_b[:1])
    assert verdicts(alone_base, alone_cand)[0]["t[0]"].verdict == "regression"
    base, cand = runs(tmp_path, base_b, cand_b)
    assert verdicts(base, cand)[0]["t[0]"].verdict != "regression"


def test_accuracy_drop_and_first_epoch_are_gated_with_their_own_thresholds(tmp_path):
    base, cand = runs(tmp_path, [benchmark("t[a]", epochs(1), accuracy=0.85), benchmark("t[b]", epochs(2))],
                      [benchmark("t[a]", epochs(3), accuracy=0.82), benchmark("t[b]", epochs(4, first=5.0))])
    found, _ = verdicts(base, cand)
    assert found["t[a]"].accuracy == "regression" and found["t[a]"].verdict == "regression"
    assert found["t[b]"].first_epoch == "regression" and found["t[b]"].first_epoch_ratio == pytest.approx(2.5)
    found, _ = verdicts(base, cand, defaults=gate.Thresholds(accuracy=0.05, first_epoch=2.0))
    assert {v.verdict for v in found.values()} == {"no change"}


def test_marker_and_file_thresholds_apply_per_benchmark(tmp_path):
    base, cand = runs(tmp_path, [benchmark("t[a]", epochs(1)), benchmark("u[b]", epochs(2), group="wide")],
                      [benchmark("t[a]", epochs(3, scale=1.2), gate_marker={"time": 0.30}),
                       benchmark("u[b]", epochs(4, scale=1.2), group="wide")])
    found, _ = verdicts(base, cand)
    assert found["t[a]"].time != "regression" and found["t[a]"].thresholds["time"] == 0.30
    assert found["u[b]"].time == "regression"
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"wide": {"time": 0.5}}))
    found, _ = verdicts(base, cand, overrides=gate.load_thresholds(str(thresholds)))
    assert found["u[b]"].time != "regression"
    thresholds.write_text(json.dumps({"wide": {"speed": 0.5}}))
    with pytest.raises(ValueError, match="unknown gate threshold speed"):
        gate.load_thresholds(str(thresholds))


def test_a_different_machine_refuses_to_gate_but_clock_speed_does_not(tmp_path, capsys):
    bench = [benchmark("t[a]", epochs(1))]
    base, cand = runs(tmp_path, bench, bench, cpu={"hz_actual": [3_000_000_000, 0]})
    assert verdicts(base, cand)[0]["t[a]"].verdict == "no change"
    base, cand = runs(tmp_path, bench, bench, tensorflow="2.20.0", gpus=["NVIDIA H100"])
    with pytest.raises(gate.MachineMismatch, match=r"tensorflow: '2.21.0' \(base.json\) != '2.20.0'"):
        verdicts(base, cand)
    assert cli.main(["compare", base, cand]) == 2
    assert "--allow-mismatch" in capsys.readouterr().err
    assert cli.main(["compare", base, cand, "--allow-mismatch"]) == 0


def test_missing_benchmarks_are_reported_not_gated(tmp_path):
    base, cand = runs(tmp_path, [benchmark("t[a]", epochs(1))],
                      [benchmark("t[a]", epochs(2)), benchmark("t[new]", epochs(3))])
    found, comparison = verdicts(base, cand)
    assert found["t[new]"].verdict == "missing" and not comparison.regressions


def test_pooling_several_runs_per_side(tmp_path):
    base = [write(tmp_path / f"b{i}.json", [benchmark("t[a]", epochs(i, rounds=3))]) for i in range(3)]
    cand = [write(tmp_path / f"c{i}.json", [benchmark("t[a]", epochs(9 + i, rounds=3, scale=1.2))]) for i in range(3)]
    comparison = gate.compare([load_run(p) for p in base], [load_run(p) for p in cand])
    (verdict,) = comparison.verdicts
    assert verdict.baseline_epochs == 9 and verdict.verdict == "regression"
    assert cli.main(["compare", *base, cand[0], "--candidate-also", *cand[1:]]) == 1


@pytest.mark.parametrize("content, message", [
    ("not json", "not JSON"),
    ('{"a": 1}', "not pytest-benchmark's"),
    ('{"machine_info": {}, "benchmarks": [{"name": "x", "extra_info": {}}]}', "none of its benchmarks"),
])
def test_a_file_that_is_not_benchmark_json_is_a_clear_error(tmp_path, content, message, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(NotBenchmarkJSON, match=message):
        load_run(bad)
    good = write(tmp_path / "good.json", [benchmark("t[a]", epochs(1))])
    assert cli.main(["compare", good, str(bad)]) == 2
    assert message in capsys.readouterr().err


def test_verdict_intervals_are_finite_with_enough_rounds(tmp_path):
    base, cand = runs(tmp_path, [benchmark("t[a]", epochs(1))], [benchmark("t[a]", epochs(2))])
    verdict = verdicts(base, cand)[0]["t[a]"]
    assert 0 < verdict.ratio_low < 1 < verdict.ratio_high < math.inf


def test_a_whole_run_drifting_is_not_a_regression_once_run_noise_is_known(tmp_path):
    # The same code, but the machine ran the candidate 20% slower throughout (a shared VM).
    base, cand = runs(tmp_path, [benchmark("t[a]", epochs(1))], [benchmark("t[a]", epochs(2, scale=1.2))])
    assert verdicts(base, cand, run_noise=0.0)[0]["t[a]"].time == "regression"  # epochs alone cry wolf
    drift_aware = verdicts(base, cand, run_noise=0.15)[0]["t[a]"]
    assert drift_aware.time == "inconclusive" and "run noise 0.150" in drift_aware.method


def test_run_noise_is_estimated_from_several_runs(tmp_path):
    levels = [1.0, 1.12, 0.9, 1.05]  # unchanged code, runs wandering by ~10%
    base = [write(tmp_path / f"b{i}.json", [benchmark("t[a]", epochs(i, scale=s))]) for i, s in enumerate(levels)]
    same = write(tmp_path / "same.json", [benchmark("t[a]", epochs(9, scale=1.1))])
    slow = write(tmp_path / "slow.json", [benchmark("t[a]", epochs(9, scale=2.0))])
    comparison = gate.compare([load_run(p) for p in base], [load_run(same)])
    assert comparison.verdicts[0].time != "regression" and "noise estimated" in comparison.verdicts[0].method
    comparison = gate.compare([load_run(p) for p in base], [load_run(slow)])
    assert comparison.verdicts[0].time == "regression"


def test_run_noise_must_be_a_number_or_auto():
    assert gate.parse_run_noise("auto") == "auto" and gate.parse_run_noise("0.08") == 0.08
    with pytest.raises(ValueError, match="give 'auto' or a number >= 0"):
        gate.parse_run_noise("-1")


def test_fitbench_noise_measures_run_to_run_noise(tmp_path, capsys):
    levels = [1.0, 1.1, 0.9]
    paths = [write(tmp_path / f"a{i}.json", [benchmark("t[a]", epochs(i, scale=s, noise=0.001))])
             for i, s in enumerate(levels)]
    noise, dof = gate.run_noise([load_run(p) for p in paths])
    assert dof == 2 and noise == pytest.approx(0.1, abs=0.01)  # sd of log(1.0), log(1.1), log(0.9)
    assert cli.main(["noise", *paths]) == 0
    assert "--run-noise 0.1" in capsys.readouterr().out
    assert cli.main(["noise", paths[0]]) == 2


def interleaved_runs(tmp_path, scale, names=("t[a]", "t[b]", "t[c]"), seed=0, ring="r1"):
    """A baseline and a candidate that took turns in one ring, on a machine whose speed
    drifts by 20% from epoch to epoch (shared by the two epochs of a pair)."""
    rng = np.random.default_rng(seed)
    base, cand = [], []
    for name in names:
        drift = rng.lognormal(0, 0.20, 11)
        b = [2.0, *(drift * rng.lognormal(0, 0.01, 11))]
        c = [2.0, *(scale * drift * rng.lognormal(0, 0.01, 11))]
        for benchmarks, epochs_, index in ((base, b, 0), (cand, c, 1)):
            entry = benchmark(name, epochs_)
            entry["extra_info"]["interleave"] = {"ring": ring, "index": index, "size": 2}
            entry["extra_info"]["epoch_turns"] = [2 * k + index for k in range(12)]
            benchmarks.append(entry)
    return runs(tmp_path, base, cand)


def test_interleaved_runs_are_paired_and_see_through_drift(tmp_path):
    found, comparison = verdicts(*interleaved_runs(tmp_path, 1.0))
    assert {v.time for v in found.values()} == {"no change"}
    assert all(v.method == "interleaved, signed-rank on 11 pairs" for v in found.values())
    assert comparison.overall.verdict == "no change"
    assert 0.98 < comparison.overall.ratio_low < 1 < comparison.overall.ratio_high < 1.02


def test_interleaved_planted_slowdown_is_a_regression_per_benchmark_and_overall(tmp_path, capsys):
    base, cand = interleaved_runs(tmp_path, 1.2)
    found, comparison = verdicts(base, cand)
    assert {v.time for v in found.values()} == {"regression"}
    assert comparison.overall.verdict == "regression" and 1.15 < comparison.overall.ratio < 1.25
    assert cli.main(["compare", base, cand, "--markdown", str(tmp_path / "summary.md")]) == 1
    assert "all benchmarks (geometric mean)" in capsys.readouterr().out
    assert "Epoch time of all benchmarks (geometric mean): **regression**" in (tmp_path / "summary.md").read_text()


def test_runs_of_different_rings_or_far_apart_turns_are_not_paired(tmp_path):
    base, cand = interleaved_runs(tmp_path, 1.0)
    document = json.loads((tmp_path / "cand.json").read_text())
    for entry in document["benchmarks"]:
        entry["extra_info"]["interleave"]["ring"] = "another"
    (tmp_path / "other.json").write_text(json.dumps(document))
    found, comparison = verdicts(base, str(tmp_path / "other.json"))
    assert not any(v.method.startswith("interleaved") for v in found.values()) and comparison.overall is None
    assert {v.time for v in found.values()} == {"inconclusive"}  # unpaired, the drift hides everything
    for entry in document["benchmarks"]:
        entry["extra_info"]["interleave"]["ring"] = "r1"
        entry["extra_info"]["epoch_turns"] = [t + 40 for t in entry["extra_info"]["epoch_turns"]]
    (tmp_path / "far.json").write_text(json.dumps(document))
    found, _ = verdicts(base, str(tmp_path / "far.json"))
    assert not any(v.method.startswith("interleaved") for v in found.values())
