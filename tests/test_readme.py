"""The README's "Adding a benchmark" example works as written."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from tests.conftest import ROOT, run_pytest


def readme_example() -> str:
    section = (ROOT / "README.md").read_text().split("## Adding a benchmark for your own model", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_benchmark_runs(synthetic_data_dir):
    # Inside the checkout, so that its conftest.py (the plugin and fixtures) applies, as it
    # would to a file a user adds to benchmarks/.
    directory = Path(tempfile.mkdtemp(prefix=".readme-example-", dir=ROOT))
    try:
        (directory / "test_my_cnn.py").write_text(readme_example())
        run = run_pytest(str(directory / "test_my_cnn.py"), "--profile", "smoke", "--devices", "cpu", "--offline",
                         "--require-data", "--data-dir", str(synthetic_data_dir))
    finally:
        shutil.rmtree(directory)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 1 deselected" in run.stdout  # filters-8 is not in the smoke subset
    assert "1 case is not in the smoke profile's subset" in run.stdout
    assert "my_cnn             filters-32" in run.stdout  # the summary row
    assert "test_my_cnn[cpu-filters-32] epoch 6/6:" in run.stdout  # the live progress
