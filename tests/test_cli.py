"""The fitbench command."""

from __future__ import annotations

import pytest

from fitbench import cli
from tests.helpers import ROOT

SAMPLE = str(ROOT / "tests" / "sample" / "bench_batch.py")


def test_overhead_prints_a_row_per_case_of_the_experiment(synthetic_data_dir, capsys):
    code = cli.main(["overhead", SAMPLE, "--profile", "smoke", "--data-dir", str(synthetic_data_dir),
                     "--offline", "--repeats", "1", "--tolerance", "100"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("batch_size-")]
    assert [row[0] for row in rows] == ["batch_size-50", "batch_size-100"]  # the grid, in its order
    # ... plain fit, runner, difference [interval], churn, fit on NumPy, numpy variant, its difference [interval]
    assert all(row[3].endswith("%") and row[4].startswith("[") and len(row) == 12 for row in rows)
    assert all(row[9].endswith("%") and row[10].startswith("[") for row in rows)
    assert "one extra fit() call costs" in out


@pytest.mark.parametrize("path", sorted(str(p) for p in (ROOT / "benchmarks").glob("test_*.py")))
def test_overhead_reads_every_benchmark_file(path, capsys):
    # An unknown case is refused after the file is read: its grid is named, nothing trains.
    assert cli.main(["overhead", path, "--cases", "no-such-case"]) == 2
    assert "its grid has" in capsys.readouterr().err


def test_overhead_of_a_file_without_an_experiment_is_one_line(tmp_path, capsys):
    bare = tmp_path / "test_bare.py"
    bare.write_text("def test_x():\n    pass\n")
    assert cli.main(["overhead", str(bare)]) == 2
    assert "exports no EXPERIMENT" in capsys.readouterr().err


def test_unknown_command_exits_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
