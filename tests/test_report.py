"""fitbench report from JSON written by real (tiny) pytest-benchmark runs."""

from __future__ import annotations

import json
import struct

import pytest

from fitbench import cli
from fitbench.results import Row, device_speedups, load_run
from tests.conftest import run_pytest

SAMPLE = "tests/sample/bench_batch.py"


@pytest.fixture(scope="module")
def two_runs(synthetic_data_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("runs")
    paths = []
    for index in range(2):
        out = directory / f"run{index}.json"
        run = run_pytest(SAMPLE, "-o", "python_files=bench_*.py", "--offline", "--require-data", "--devices",
                         "cpu", "--data-dir", str(synthetic_data_dir), "--profile", "smoke",
                         f"--benchmark-json={out}", "--benchmark-save-data")
        assert run.returncode == 0, run.stdout + run.stderr
        paths.append(out)
    return paths


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_has_the_runs_values_and_readable_plots(two_runs, tmp_path):
    out = tmp_path / "report"
    assert cli.main(["report", *map(str, two_runs), "-o", str(out)]) == 0
    text = (out / "report.md").read_text()
    latest = load_run(two_runs[-1])
    for row in latest.rows:
        assert f"| {row.case} | cpu | {row.accuracy:.4f} (test) | 0.300 | {row.median_epoch_seconds:.3f} |" in text
    assert "not in this run: gpu, tpu" in text
    assert "No case ran on more than one device" in text
    assert "`test_mnist_architecture`" in text.split("## Missing", 1)[1]  # says what is missing
    for name in ("batch_size.png", "history_test_batch_size.png"):
        assert f"]({name})" in text
        width, height = png_size(out / name)
        assert width >= 600 and height >= 300


def test_a_single_run_has_no_history(two_runs, tmp_path):
    out = tmp_path / "single"
    assert cli.main(["report", str(two_runs[0]), "-o", str(out)]) == 0
    assert "One run only" in (out / "report.md").read_text()
    assert not (out / "history_test_batch_size.png").exists()


def test_a_file_that_is_not_benchmark_json_is_refused(tmp_path, capsys):
    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps({"hello": "world"}))
    assert cli.main(["report", str(bad), "-o", str(tmp_path / "out")]) == 2
    assert "not pytest-benchmark's" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.md").exists()


def row(device, seconds, samples, experiment="test_fashion_cnn", epochs=4):
    return Row(experiment=experiment, case="", device=device, epoch_seconds=[9.0] + [seconds] * 3,
               train_samples=samples, samples_per_epoch=samples, epochs=epochs)


def test_device_speedups_are_per_sample():
    # A bounded CPU run (1,000 samples in 2 s) vs a full GPU run (60,000 samples in 3 s).
    speedups = device_speedups([row("cpu", 2.0, 1_000), row("gpu", 3.0, 60_000), row("tpu", 1.5, 60_000)])
    by_pair = {(s.device, s.reference): s for s in speedups}
    assert by_pair["gpu", "cpu"].ratio == pytest.approx((2.0 / 1_000) / (3.0 / 60_000))  # 40x
    assert not by_pair["gpu", "cpu"].same_schedule
    assert by_pair["tpu", "gpu"].ratio == pytest.approx(2.0) and by_pair["tpu", "gpu"].same_schedule
    assert "gpu 40.0x cpu per sample (bounded schedule" in by_pair["gpu", "cpu"].describe()
