"""The end of the session on the terminal: notes, the fitbench summary, the ring, the gate."""

from __future__ import annotations

import pytest

from fitbench.compare.results import device_speedups
from fitbench.plugin.gating import report_gate
from fitbench.plugin.results import measured_peaks
from fitbench.plugin.session import state
from fitbench.present import format
from fitbench.processes import turns


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    write = terminalreporter.write_line
    for note in [*state(config).compare_notes, *state(config).not_compared]:
        write(f"fitbench: {note}", yellow=True)
    records = state(config).records.in_grid_order()
    if records:
        terminalreporter.section("fitbench summary")
        left_out = state(config).left_out
        write(f"profile {config.getoption('profile')}; {format.SUMMARY_LEGEND}" + (f"; {left_out}" if left_out else ""))
        shared = max(record.measurement.concurrent for record in records)
        if shared > 1:
            write(f"{shared} trainings shared this machine at once (pytest-xdist): their times are not "
                  "comparable with a serial run's, and the gate treats them as another measurement")
        speedups = device_speedups(records)
        for line in format.summary_lines(records, speedups, measured_peaks(config)):
            write(line)
        variants = format.variant_lines(records)
        if variants:
            write("")
            for line in variants:
                write(line)
        if speedups:
            write("")
            write("device comparison (per training sample, same global batch size):")
            for speedup in speedups:
                write(f"  {format.device_speedup(speedup)}")
    ring = turns.current()
    if ring is not None:
        write("")
        write(f"interleaved: session {ring.index + 1} of {ring.size} in ring {ring.ring_id}"
              + (f"; {ring.broken}" if ring.broken else ""))
    report_gate(config, terminalreporter)
