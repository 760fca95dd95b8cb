"""An experiment is data: a workload, a grid of cases, targets and what to plot.

Each benchmark file (benchmarks/test_*.py) exports one ``EXPERIMENT``; its test function
takes the ``case`` fixture, which fitbench's plugin parametrizes over the grid. The report,
the profile tests and ``fitbench overhead`` read the same object, so a new benchmark file
needs no edit anywhere else.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from fitbench.measure import models
from fitbench.measure.devices import KINDS
from fitbench.measure.workloads import HIGHER_IS_BETTER, Variant, Workload, metric_name, output_metric

BENCHMARKS = Path("benchmarks")  # where the tools look by default: the current directory's benchmarks/
SPLITS = ("test", "validation")  # where a target is checked
# Metrics that live in [0, 1]: a target outside it is a typo.
UNIT_METRICS = {"accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
                "top_k_categorical_accuracy", "auc", "precision", "recall", "f1_score"}
# Errors, never negative (the metrics whose lower value is better): a target of 0 or below can never be met.
ERROR_METRICS = {metric for metric, higher in HIGHER_IS_BETTER.items() if not higher}


@dataclass(frozen=True)
class Plot:
    """One plot of seconds per epoch and the checked metric against a hyperparameter, a line per device."""

    name: str  # the PNG's file name, without .png
    title: str
    xlabel: str
    x: Mapping[str, float]  # case id -> x value; only these cases are plotted
    log_x: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)  # case id -> tick label (default: its x value)


@dataclass(frozen=True)
class Case:
    """One point of an experiment's grid, resolved for a profile and a device kind."""

    id: str
    workload: Workload
    group: str
    split: str  # where the target is checked: test or validation
    threshold: float  # the target: the workload's metric must meet it in the direction of its goal
    note: str = ""


@dataclass(frozen=True)
class Experiment:
    title: str
    workload: Workload
    # Target of the workload's metric per profile: a number, a number per device kind ({"cpu": 0.8, "gpu": 0.88}),
    # or, for a grid, one of those per case id; a case absent from a profile, or whose target for
    # a device kind is None, is not in that profile's subset (on that device).
    targets: Mapping[str, Any]
    # Case id -> changes to the workload (`Workload.but`), or a whole Workload; {"": {}} is the
    # experiment's one case.
    grid: Mapping[str, Mapping[str, Any] | Workload] = field(default_factory=lambda: {"": {}})
    split: str = "test"  # the split the target is checked on: test or validation
    groups: Mapping[str, str] = field(default_factory=dict)  # case id -> pytest-benchmark group
    notes: Mapping[str, str] = field(default_factory=dict)  # case id -> what the notebook saw
    plots: tuple[Plot, ...] = ()
    # A variant each case also trains under, in turns epoch by epoch in the same test (the `train`
    # fixture's twin), so that a case's speed-up over it comes from paired epochs.
    reference: Variant | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"{self.title}: split {self.split!r} is not one of {', '.join(SPLITS)}")
        for plot in self.plots:
            unknown = set(plot.x) - set(self.grid)
            if unknown:
                raise ValueError(f"{self.title}: plot {plot.name} names cases not in the grid: {sorted(unknown)}")

    @property
    def cases(self) -> list[str]:
        """Case ids in the grid's order."""
        return list(self.grid)

    def report_plots(self) -> tuple[Plot, ...]:
        """The plots the report draws: the experiment's own, or for a grid without any, one
        against what its cases change: the one number that varies (filters 8 vs 32, log-scaled
        when it spans 8x or more), else the cases in the grid's order."""
        if self.plots or len(self.grid) < 2:
            return self.plots
        changes = {case: _flat(self.grid[case]) for case in self.grid if not isinstance(self.grid[case], Workload)}
        if len(changes) < 2:
            return ()
        keys = sorted({key for changed in changes.values() for key in changed})
        varying = [key for key in keys if len({repr(changed.get(key)) for changed in changes.values()}) > 1]
        numbers = {case: changed.get(varying[0]) for case, changed in changes.items()} if len(varying) == 1 else {}
        name = re.sub(r"\W+", "_", self.workload.name).strip("_") or "grid"
        if numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers.values()):
            values = [float(v) for v in numbers.values()]
            wide = min(values) > 0 and max(values) / min(values) >= 8
            return (Plot(f"{name}_{varying[0].replace('.', '_')}", self.title, varying[0].rsplit(".", 1)[-1],
                         {case: float(v) for case, v in numbers.items()}, log_x=wide),)
        return (Plot(f"{name}_cases", self.title, "case", {case: float(i) for i, case in enumerate(changes)},
                     labels={case: case for case in changes}),)

    @property
    def parametrized(self) -> bool:
        return list(self.grid) != [""]

    def group(self, case: str) -> str:
        return self.groups.get(case, self.workload.name)

    def workload_of(self, case: str) -> Workload:
        if case not in self.grid:
            raise KeyError(f"{self.title}: no case {case!r}; the grid has {', '.join(self.cases)}")
        changes = self.grid[case]
        if isinstance(changes, Workload):  # a case that is another workload altogether
            return changes
        return self.workload.but(**changes) if changes else self.workload

    def target(self, profile: str, case: str, device: str) -> float | None:
        """The target of `case` on a `device` kind under `profile`; None when the case
        is not in that profile's subset."""
        if profile not in self.targets:
            raise KeyError(f"{self.title}: no targets for profile {profile!r}; "
                           f"it has {', '.join(self.targets)}")
        value = self.targets[profile]
        if self.parametrized:
            if case not in value:
                return None
            value = value[case]
        if isinstance(value, Mapping):
            if device not in value:
                raise KeyError(f"{self.title}: profile {profile!r} has no target for device {device!r}; "
                               f"it has {', '.join(value) or 'none'}")
            value = value[device]
        return None if value is None else float(value)

    def resolve(self, case: str, profile: str, device: str) -> Case | None:
        threshold = self.target(profile, case, device)
        if threshold is None:
            return None
        return Case(case, self.workload_of(case), self.group(case), self.split, threshold,
                    self.notes.get(case, ""))

    def check(self) -> list[str]:
        """What is wrong with this experiment's declaration, one line each with the fix (empty
        when nothing): checked at collection, before anything trains."""
        problems = []
        for profile, targets in self.targets.items():
            if self.parametrized and isinstance(targets, Mapping):
                unknown = [case for case in targets if case not in self.grid]
                if unknown:
                    problems.append(f"targets[{profile!r}] names {', '.join(map(repr, unknown))}, not in the grid "
                                    f"({', '.join(self.cases)}): fix the case id or add it to the grid")
                if not targets or all(_none_everywhere(value) for value in targets.values()):
                    problems.append(f"profile {profile!r} has no targets, so it would run nothing: give a target "
                                    "per case, or remove the profile")
                    continue  # one line for it, not one per case and device
            elif not self.parametrized and _none_everywhere(targets):
                problems.append(f"profile {profile!r} has no target, so it would run nothing: give one, or remove "
                                "the profile")
                continue
            for case in self.cases:
                for kind in KINDS:
                    try:
                        threshold = self.target(profile, case, kind)
                        workload = self.workload_of(case)
                        workload.schedule(profile, kind)
                    except (KeyError, ValueError) as error:
                        problems.append(str(error).strip("'\""))
                        continue
                    raw = targets.get(case) if self.parametrized and isinstance(targets, Mapping) else targets
                    where = f"{profile}/{case or '-'}" + (f"/{kind}" if isinstance(raw, Mapping) else "")
                    if threshold is not None:
                        problems += out_of_range(workload, threshold, where)
                    contract = models.contract_problem(workload.model, workload.model_args)
                    if contract:
                        problems.append(f"{case or self.workload.name}: {contract}")
        return sorted(set(problems), key=problems.index)


def _flat(changes: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A case's changes as dotted keys: {"model_args": {"filters": 8}} -> {"model_args.filters": 8}."""
    flat: dict[str, Any] = {}
    for key, value in changes.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def out_of_range(workload: Workload, threshold: float, where: str) -> list[str]:
    """A target the metric can never meet, in its own direction."""
    metric = metric_name(output_metric(workload.metric)[1])  # an output's accuracy is an accuracy
    if metric in UNIT_METRICS and not 0 < threshold <= 1:
        return [f"{where}: {metric} target {threshold:g} is not in (0, 1], so {metric} {workload.goal} "
                f"{threshold:g} can never be met (or always is); give a fraction, 0.85 for 85%"]
    if metric in ERROR_METRICS and threshold <= 0:
        return [f"{where}: {metric} target {threshold:g}: an error is never below 0, so {metric} <= {threshold:g} "
                "can never be met; give the largest error you accept"]
    return []


def _none_everywhere(value: Any) -> bool:
    """A target that selects no device: None, or None for every device kind."""
    return value is None or (isinstance(value, Mapping) and all(v is None for v in value.values()))


# Files whose directory pytest takes as the rootdir: conftest.py files above it are not read.
ROOT_MARKERS = ("pyproject.toml", "pytest.ini", "tox.ini", "setup.cfg", ".git")


def load_conftests(path: Path) -> None:
    """Import the conftest.py files pytest would for the benchmark file `path`, from its rootdir
    down to the file's directory, each directory first on sys.path as pytest's default import mode
    puts it: what they register (a dataset by name) and what they make importable (the
    repository's own modules) is there for the fitbench command too."""
    folder = path.resolve().parent
    chain = [folder, *folder.parents]
    root = next((i for i, d in enumerate(chain) if any((d / marker).exists() for marker in ROOT_MARKERS)), 0)
    for directory in reversed(chain[:root + 1]):
        conftest = directory / "conftest.py"
        name = f"fitbench_conftest_{abs(hash(str(conftest)))}"
        if not conftest.is_file() or name in sys.modules:
            continue
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
        spec = importlib.util.spec_from_file_location(name, conftest)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


def load_module(path: str | os.PathLike) -> ModuleType:
    """Import a benchmark file by path, after the conftest.py files pytest would read for it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark file at {path}")
    load_conftests(path)
    spec = importlib.util.spec_from_file_location(f"fitbench_benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(path: str | os.PathLike) -> Experiment:
    """The EXPERIMENT a benchmark file exports; ValueError saying what to add when it has none."""
    module = load_module(path)
    experiment = getattr(module, "EXPERIMENT", None)
    if not isinstance(experiment, Experiment):
        raise ValueError(f"{path} exports no EXPERIMENT (fitbench.measure.experiments.Experiment); "
                         "see the README's 'Your own benchmark' for the shape of a benchmark file")
    return experiment


def discover(*places: str | os.PathLike) -> dict[str, Experiment]:
    """Test function name -> its experiment, for every benchmark file in `places` (files, or
    directories of test_*.py; default: benchmarks/ in the current directory)."""
    files: list[Path] = []
    if not places and not BENCHMARKS.is_dir():
        return {}  # no benchmarks/ here: runs are reported without their experiments' titles and plots
    for place in places or (BENCHMARKS,):
        place = Path(place)
        if not place.exists():
            raise ValueError(f"no benchmark file or directory at {place}; give the benchmark files the runs "
                             "came from (--benchmarks)")
        files += sorted(place.glob("test_*.py")) if place.is_dir() else [place]
    found: dict[str, Experiment] = {}
    for path in files:
        module = load_module(path)
        experiment = getattr(module, "EXPERIMENT", None)
        if not isinstance(experiment, Experiment):
            continue
        for name, function in vars(module).items():
            if name.startswith("test_") and inspect.isfunction(function):
                found[name] = experiment
    return found
