"""The gate inside pytest: --gate BASELINE.json, read before any training, judged at the end."""

from __future__ import annotations

import pytest

from fitbench.compare import gate
from fitbench.compare.results import NotBenchmarkJSON, load_run
from fitbench.core.options import GateSettings
from fitbench.plugin.results import session_run
from fitbench.plugin.session import state
from fitbench.present import format


def judge(session: pytest.Session) -> None:
    """The gate judged at the session's end (fitbench.plugin.finish): a failure fails the session."""
    if evaluate_gate(session.config) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def configure_gate(config: pytest.Config) -> None:
    """Read and check --gate's files and the gate's options now, before any training."""
    state(config).gate = None
    state(config).gate_baseline = []
    paths = config.getoption("gate") or []
    try:
        state(config).gate_settings = GateSettings.read(config.getoption, "gate-")
        state(config).gate_baseline = [load_run(path) for path in paths]
    except (NotBenchmarkJSON, ValueError) as error:
        raise pytest.UsageError(f"--gate: {error}") from error


def evaluate_gate(config: pytest.Config) -> bool:
    """Gate the session against --gate; True when the gate fails (or cannot run)."""
    baseline = state(config).gate_baseline
    if not baseline or hasattr(config, "workerinput"):
        return False  # xdist workers hold part of the records; the controller gates them all
    candidate = session_run(config)
    if not candidate.records:
        return False
    try:
        state(config).gate = gate.compare(baseline, [candidate], state(config).gate_settings)
    except (gate.MachineMismatch, gate.SoftwareMismatch, gate.NothingComparable) as error:
        state(config).gate = error
        return True
    return bool(state(config).gate.failures)


def report_gate(config: pytest.Config, terminalreporter) -> None:
    outcome = state(config).gate
    if outcome is None:
        return
    write = terminalreporter.write_line
    failed = isinstance(outcome, Exception) or bool(outcome.failures)
    terminalreporter.section("fitbench gate", red=failed, bold=failed)
    if isinstance(outcome, Exception):
        write(f"ERROR: the gate could not run: {outcome}")
        return
    write(f"alpha {outcome.alpha} (Holm over the benchmarks compared)")
    for line in [*format.verdict_lines(outcome), *format.failure_lines(outcome)]:
        write(line)
