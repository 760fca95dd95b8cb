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


def test_the_probe_table_is_the_latest_run_of_every_probe():
    """docs/probes.md is written by `python -m tests.probes`: one row per probe, in the list's order,
    so that a probe added or renamed is run before the table claims it."""
    from tests import probes

    text = (ROOT / "docs" / "probes.md").read_text()
    assert "Written by `python -m tests.probes`" in text
    rows = re.findall(r"^\| \d+ \| [^|]+ \| `([\w-]+)`:", text, flags=re.MULTILINE)
    assert rows == [probe.name for probe in probes.PROBES]
    assert len({probe.name for probe in probes.PROBES}) == len(probes.PROBES)
    for probe in probes.PROBES:  # each edit of the user's file matches it
        probes.user_file(probe.edits)
