"""The documentation names what the code has: every plugin option is in docs/usage.md's table."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import ROOT


def test_every_option_of_the_plugin_is_in_the_options_table():
    helped = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300).stdout
    group = helped.split("fitbench:\n", 1)[1].split("\n\n", 1)[0]
    options = set(re.findall(r"^\s+(--[a-z][a-z-]+)", group, re.M))
    assert {"--data-dir", "--cluster", "--batch-per-worker", "--gate-metric-threshold"} <= options
    table = (ROOT / "docs" / "usage.md").read_text().split("## Options", 1)[1].split("\n## ", 1)[0]
    assert sorted(option for option in options if f"`{option}" not in table) == []
