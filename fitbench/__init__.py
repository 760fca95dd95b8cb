"""fitbench: how fast, and how well, TensorFlow/Keras trains across hyperparameters and devices.

A benchmark file needs only this package's top level::

    from fitbench import Experiment, Plot, Schedule, Workload

The package is grouped by concern (docs/internals.md shows the floors):

* `fitbench.core`: the record, the run's section, statistics, thresholds, options declared once;
* `fitbench.measure`: workloads, the dataset loader and registry, devices, the runner, peaks, memory, FLOPs;
* `fitbench.compare`: the gate, results read back, scaling, history;
* `fitbench.plugin`: the pytest plugin (options, hooks, fixtures), registered by an entry point;
* `fitbench.present`: the text of measurements and comparisons, and the report;
* `fitbench.processes`: process groups, the ring of sessions taking turns, local workers;
* `fitbench.cli`: the `fitbench` command, one module per command.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from typing import Any

__version__ = "0.2.0"

# The public names, imported on first use: importing fitbench does not import TensorFlow.
_PUBLIC = {
    "Experiment": "fitbench.measure.experiments",
    "Plot": "fitbench.measure.experiments",
    "Schedule": "fitbench.measure.workloads",
    "Workload": "fitbench.measure.workloads",
    "Variant": "fitbench.measure.workloads",
    "datasets": "fitbench.measure.datasets",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'fitbench' has no attribute {name!r}")
    module = importlib.import_module(_PUBLIC[name])
    return module if module.__name__.endswith(f".{name}") else getattr(module, name)


# Where fitbench 0.1's modules went (0.2 grouped the package by concern): an old benchmark file's
# import fails with a line that says what the name became, not a bare ModuleNotFoundError.
MOVED = {
    "workloads": "fitbench.measure.workloads", "experiments": "fitbench.measure.experiments",
    "models": "fitbench.measure.models", "runner": "fitbench.measure.runner", "devices": "fitbench.measure.devices",
    "flops": "fitbench.measure.flops", "memory": "fitbench.measure.memory", "datasets": "fitbench.measure.datasets",
    "record": "fitbench.core.record", "stats": "fitbench.core.stats", "gate": "fitbench.compare.gate",
    "results": "fitbench.compare.results", "report": "fitbench.present.report", "turns": "fitbench.processes.turns",
    "overhead": "fitbench.cli.overhead", "summary": "fitbench.plugin.summary",
}


class _MovedModules(importlib.abc.MetaPathFinder):
    """Consulted after every other finder: only a name no module has reaches it."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        old = fullname.partition("fitbench.")[2]
        if fullname.startswith("fitbench.") and old in MOVED:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: fitbench 0.2 moved it to {MOVED[old]}; a benchmark file needs only "
                "`from fitbench import Experiment, Plot, Schedule, Workload` (and `result.assert_target(case.split, "
                "case.threshold)` replaced `assert_accuracy`)", name=fullname)
        return None


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
