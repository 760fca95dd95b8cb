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
