"""The fitbench command."""

from __future__ import annotations

import pytest

from fitbench import cli
from tests.conftest import ROOT

SAMPLE = str(ROOT / "tests" / "sample" / "bench_tiny.py")


def test_overhead_prints_a_row_per_batch_size(synthetic_data_dir, capsys):
    code = cli.main(["overhead", SAMPLE, "--profile", "smoke", "--data-dir", str(synthetic_data_dir),
                     "--offline", "--batch-sizes", "50", "100", "--repeats", "1", "--tolerance", "100"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.strip().split(" ")[0] in {"50", "100"}]
    assert [row[0] for row in rows] == ["50", "100"]
    assert all(row[3].endswith("%") and row[4].startswith("[") and len(row) == 8 for row in rows)
    assert "one extra fit() call costs" in out


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2
