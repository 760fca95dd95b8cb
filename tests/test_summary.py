"""The session summary table."""

from __future__ import annotations

from fitbench.present import format
from tests.helpers import make_record


def row(device, seconds, accuracy=0.85, threshold=0.83, case="batch_size-32", replicas=1):
    return make_record(f"test_batch_size[{device}-{case}]", device, [5.0, seconds, seconds], samples=55_000,
                       accuracy=accuracy, threshold=threshold, case=case, replicas=replicas)


def test_a_row_per_benchmark_in_the_order_given_with_the_ratio_to_cpu_in_120_columns():
    lines = format.summary_lines([row("cpu", 4.0), row("cpu", 2.0, accuracy=0.7, case="batch_size-64"),
                                  row("gpu", 0.5)])
    assert len(lines) == 2 + 3 and max(map(len, lines)) <= 120
    cpu, cpu64, gpu = lines[2:]
    assert cpu.split()[:4] == ["batch_size", "batch_size-32", "cpu", "0.850>=0.830"]
    assert "0.700< 0.830" in cpu64  # a failed threshold shows, with the value's digits
    assert gpu.split()[2] == "gpu" and gpu.endswith("8.00x") and "110,000" in gpu


def test_replicas_show_when_more_than_one():
    (line,) = format.summary_lines([row("cpu", 4.0, replicas=2)])[2:]
    assert line.split()[2] == "cpux2"
