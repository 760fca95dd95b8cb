"""The session summary table and the test-id helpers behind it."""

from __future__ import annotations

from types import SimpleNamespace

from fitbench import summary
from fitbench.results import Row
from fixtures.runner import case_id


def row(device, seconds, accuracy=0.85, threshold=0.83, case="batch_size-32"):
    return Row(experiment="test_batch_size", case=case, device=device, epoch_seconds=[5.0, seconds, seconds],
               train_samples=55_000, samples_per_epoch=55_000, epochs=3, batch_size=32,
               accuracy_metric="test_accuracy", accuracy=accuracy, accuracy_threshold=threshold)


def test_a_row_per_benchmark_with_the_ratio_to_cpu_in_100_columns():
    lines = summary.lines([row("cpu", 4.0), row("gpu", 0.5), row("cpu", 2.0, accuracy=0.7, case="batch_size-64")])
    assert len(lines) == 2 + 3 and max(map(len, lines)) <= 100
    cpu, cpu64, gpu = lines[2:]
    assert cpu.split()[:4] == ["batch_size", "batch_size-32", "cpu", "0.850>=0.83"]
    assert "0.700< 0.83" in cpu64  # a failed threshold shows
    assert gpu.split()[2] == "gpu" and gpu.endswith("8.0x") and "110,000" in gpu


def test_case_id_drops_the_device_wherever_it_sits():
    def item(text):
        return SimpleNamespace(callspec=SimpleNamespace(id=text))

    assert case_id(item("cpu-batch_size-32"), "cpu") == "batch_size-32"
    assert case_id(item("batch_size-32-gpu"), "gpu") == "batch_size-32"
    assert case_id(item("cpu"), "cpu") == ""
    assert case_id(SimpleNamespace(), "cpu") == ""
