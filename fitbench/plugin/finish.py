"""The session's end, owned in one place, as pytest-benchmark's BenchmarkSession owns save, compare
and display: one pytest_sessionfinish that calls each step in the order written here.

pytest-benchmark saves and compares in its own pytest_sessionfinish, and the terminal reporter
prints the summary after the hook's other implementations; this one wraps both (tryfirst), so:

before pytest-benchmark saves and compares
  1. an isolated session's worker hands its deselected tests to the controller (its benchmarks
     went with each report), and the controller keeps pytest's status 2 for a collection error;
  2. saved benchmarks that measured something else leave pytest-benchmark's comparison;
  3. the final JSON is written where pytest-benchmark writes none (xdist, no timed round), and
     its numbered save is made exclusive (sessions ending together);
  4. the gate judges the session, and fails it on a regression;
then pytest-benchmark saves, compares, and the terminal summary is printed;
after it
  5. the partial copy of the run goes, the final run being saved; a file that could not be
     written (a full disk) is named in one line, with what was kept, and fails the session.
"""

from __future__ import annotations

import pytest

from fitbench.plugin import durable, gating, isolation, results
from fitbench.plugin.session import state


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session):
    config = session.config
    durable_results = config.pluginmanager.get_plugin(durable.PLUGIN_NAME)
    isolation.finish(session)
    results.drop_incomparable(config)
    if durable_results is not None:
        durable_results.before_save()
    gating.judge(session)
    outcome = yield
    if durable_results is not None:
        durable_results.after_save(session)
    state(config).ended = session
    return outcome
