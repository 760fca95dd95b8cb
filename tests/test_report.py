"""fitbench report from JSON written by real (tiny) pytest-benchmark runs."""

from __future__ import annotations

import dataclasses
import json
import struct

import pytest

from fitbench import cli
from fitbench.compare import scaling
from fitbench.compare.results import device_speedups, load_run
from fitbench.present import format as text_format
from tests.helpers import make_record, run_pytest

SAMPLE = "tests/sample/bench_batch.py"


@pytest.fixture(scope="module")
def three_runs(synthetic_data_dir, tmp_path_factory):
    """Two smoke runs and a default run of the sample batch-size experiment."""
    directory = tmp_path_factory.mktemp("runs")
    paths = []
    for index, profile in enumerate(("smoke", "smoke", "default")):
        out = directory / f"run{index}.json"
        run = run_pytest(SAMPLE, "-o", "python_files=bench_*.py", "--offline", "--require-data", "--devices",
                         "cpu", "--data-dir", str(synthetic_data_dir), "--profile", profile,
                         f"--benchmark-json={out}")
        assert run.returncode == 0, run.stdout + run.stderr
        paths.append(out)
    return paths


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def report(paths, out, *more):
    assert cli.main(["report", *map(str, paths), "-o", str(out), "--benchmarks", SAMPLE, *more]) == 0
    return (out / "report.md").read_text()


@pytest.mark.e2e
def test_report_tables_each_profile_from_its_newest_run_and_says_which(three_runs, tmp_path):
    text = report(three_runs, tmp_path / "report")
    smoke, default = load_run(three_runs[1]), load_run(three_runs[2])
    smoke_section = text.split("profile smoke)", 1)[1].split("## ", 1)[0]
    default_section = text.split("profile default)", 1)[1].split("## ", 1)[0]
    assert f"From run {smoke.label}." in smoke_section and f"From run {default.label}." in default_section
    for run, section in ((smoke, smoke_section), (default, default_section)):
        for record in run.records:
            assert (f"| {record.case} | cpu | {record.target_value:.4f} (test accuracy) | >= 0.3000 | "
                    f"{record.median_epoch_seconds:.3f} |") in section
    # grid order, not alphabetical: batch_size-50 before batch_size-100
    assert smoke_section.index("| batch_size-50 |") < smoke_section.index("| batch_size-100 |")
    assert "Tiny MLP: batch size" in text and "not in these runs: gpu, tpu" in text
    assert "No case ran on more than one device" in text
    runs_section = text.split("## Runs", 1)[1]
    assert runs_section.count("| history and tables |") == 1  # the newest smoke run
    assert "| history |" in runs_section and "| tables |" in runs_section  # older smoke; the one default run
    for name in ("batch_size_smoke.png", "batch_size_default.png", "history_test_batch_size_smoke.png"):
        assert f"]({name})" in text
        width, height = png_size(tmp_path / "report" / name)
        assert width >= 600 and height >= 300
    assert not (tmp_path / "report" / "history_test_batch_size_default.png").exists()  # one default run only


@pytest.mark.e2e
def test_an_older_run_of_a_measurement_goes_into_its_history(three_runs, tmp_path):
    text = report([three_runs[0], three_runs[1]], tmp_path / "two")
    assert "history" in text.split("## Runs", 1)[1]
    text = report([three_runs[2]], tmp_path / "single")
    assert "No measurement is in more than one run" in text


def test_a_file_that_is_not_benchmark_json_is_refused(tmp_path, capsys):
    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps({"hello": "world"}))
    assert cli.main(["report", str(bad), "-o", str(tmp_path / "out")]) == 2
    assert "not pytest-benchmark's" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.md").exists()


def row(device, seconds, samples, experiment="test_fashion_cnn"):
    return make_record(f"{experiment}[{device}]", device, [9.0] + [seconds] * 3, samples=samples)


def test_device_speedups_are_per_sample():
    # A bounded CPU run (1,000 samples in 2 s) vs a full GPU run (60,000 samples in 3 s).
    speedups = device_speedups([row("cpu", 2.0, 1_000), row("gpu", 3.0, 60_000), row("tpu", 1.5, 60_000)])
    by_pair = {(s.device, s.reference): s for s in speedups}
    assert by_pair["gpu", "cpu"].ratio == pytest.approx((2.0 / 1_000) / (3.0 / 60_000))  # 40x
    assert not by_pair["gpu", "cpu"].same_schedule
    assert by_pair["tpu", "gpu"].ratio == pytest.approx(2.0) and by_pair["tpu", "gpu"].same_schedule
    assert "gpu 40.0x cpu per sample (bounded schedule" in text_format.device_speedup(by_pair["gpu", "cpu"])


@pytest.mark.e2e
def test_the_readme_results_section_is_rewritten_from_a_run_and_names_its_origin(three_runs, tmp_path, capsys):
    from fitbench.present.report import RESULTS_END, RESULTS_START

    readme = tmp_path / "README.md"
    readme.write_text(f"# intro\n\n{RESULTS_START}\nstale figures\n{RESULTS_END}\n\n## after\n")
    assert cli.main(["report", str(three_runs[2]), "--update-readme", str(readme)]) == 0
    text = readme.read_text()
    assert "stale figures" not in text and text.startswith("# intro") and text.endswith("## after\n")
    body = text.split(RESULTS_START, 1)[1].split(RESULTS_END, 1)[0]
    assert body.lstrip().startswith("Machine: ") and "measured 20" in body
    assert f"Written by `fitbench report {three_runs[2]} --update-readme {readme}`" in body
    assert "profile default" in body and "| case | device | checked metric |" in body
    # No markers: refused with the fix, nothing written.
    bare = tmp_path / "BARE.md"
    bare.write_text("# no section\n")
    assert cli.main(["report", str(three_runs[2]), "--update-readme", str(bare)]) == 2
    assert "has no generated results section" in capsys.readouterr().err and bare.read_text() == "# no section\n"


def test_the_docs_have_a_generated_results_section():
    from fitbench.present.report import RESULTS_END, RESULTS_START
    from tests.helpers import ROOT

    text = (ROOT / "docs" / "results.md").read_text()
    body = text.split(RESULTS_START, 1)[1].split(RESULTS_END, 1)[0]
    assert body.lstrip().startswith("Machine: ") and "Written by `fitbench report " in body


@pytest.mark.e2e
def test_a_runs_weak_scaling_figures_get_their_own_section(three_runs, tmp_path):
    scaled = tmp_path / "scaled.json"
    scaled.write_text(three_runs[2].read_text())
    one = make_record("test_batch[cpu-batch_size-50]", epoch_seconds=[2.0, 1.0, 1.02, 0.98, 1.0, 1.01, 0.99])
    two = make_record("test_batch[cpu-batch_size-50]", epoch_seconds=[2.0, 0.8, 0.82, 0.78, 0.8, 0.81, 0.79])
    two = dataclasses.replace(two, measurement=dataclasses.replace(two.measurement, workers=2, replicas=2,
                                                                   global_batch=64))
    scaling.write(scaled, scaling.weak_scaling([one], [two]))
    text = report([scaled], tmp_path / "report")
    section = text.split("## Scaling", 1)[1].split("## ", 1)[0]
    assert "test_batch[cpu-batch_size-50]: 2 workers" in section and "weak-scaling efficiency 62% [" in section


@pytest.mark.parametrize("grid, xlabel, x, log_x, labels", [
    ({"f8": {"model_args": {"filters": 8}}, "f32": {"model_args": {"filters": 32}}},
     "filters", {"f8": 8.0, "f32": 32.0}, False, {}),
    ({"b32": {"batch_size": 32}, "b512": {"batch_size": 512}}, "batch_size", {"b32": 32.0, "b512": 512.0}, True, {}),
    ({"adam": {"optimizer": "adam"}, "sgd": {"optimizer": "sgd"}}, "case", {"adam": 0.0, "sgd": 1.0}, False,
     {"adam": "adam", "sgd": "sgd"}),
    ({"a": {"batch_size": 32, "optimizer": "sgd"}, "b": {"batch_size": 64, "optimizer": "adam"}}, "case",
     {"a": 0.0, "b": 1.0}, False, {"a": "a", "b": "b"}),
])
def test_a_grid_without_plots_is_plotted_against_what_its_cases_change(grid, xlabel, x, log_x, labels):
    from fitbench import Experiment
    from tests.helpers import TINY

    (plot,) = Experiment(title="Mine", workload=TINY, grid=grid, targets={"smoke": 0.5}).report_plots()
    assert (plot.xlabel, dict(plot.x), plot.log_x, dict(plot.labels)) == (xlabel, x, log_x, labels)
    assert Experiment(title="One", workload=TINY, targets={"smoke": 0.5}).report_plots() == ()
