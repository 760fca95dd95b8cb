"""The plugin's state for one pytest session: one typed object in ``config.stash``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from fitbench.core.record import Record
from fitbench.measure import datasets

if TYPE_CHECKING:
    from fitbench.compare.gate import Comparison
    from fitbench.compare.results import Run
    from fitbench.core.options import GateSettings
    from fitbench.measure.workloads import Variant
    from fitbench.present.progress import Progress
    from fitbench.processes.cluster import Cluster

# The runner's Record of a test, stored by the `train` fixture; written when its report is made.
RESULT_KEY = pytest.StashKey[Record]()
# In a benchmark's extra_info while it trains, replaced by its record when the test ends: an
# entry that still has it (the session was interrupted mid-test) is never written as a result.
UNFINISHED = "fitbench_unfinished"
# A test report's user properties (pytest-xdist sends them from its workers to the controller):
RECORD_PROPERTY = "fitbench"  # the test's record, as pytest-benchmark's JSON entry
POSITION_PROPERTY = "fitbench-position"  # its place in the collection (the grid's order)
PEAKS_PROPERTY = "fitbench-peaks"  # the matmul peaks its worker measured
MACHINE_PROPERTY = "fitbench-machine"  # its worker's machine_info and hardware state


@dataclass
class Session:
    """What the plugin knows about the running session (set in pytest_configure, then by the hooks)."""

    devices: list[str] = field(default_factory=list)  # --devices, parsed
    variant: Variant | None = None  # --variant, parsed
    cluster: Cluster | None = None  # this session's place in a cluster (None: not in one)
    records: SessionRecords | None = None  # every benchmark's record, as reported
    progress: Progress | None = None  # live epoch lines (None under -q)
    interrupted: bool = False  # SIGTERM or Ctrl-C: the results are partial
    order: dict[str, int] = field(default_factory=dict)  # test name -> place in the collection
    left_out: str = ""  # the cases the profile deselected, in words
    peak_kinds: list[str] | None = None  # the device kinds whose peaks the session needs
    peaks: dict[str, dict[str, float]] | None = None  # {kind: {precision: GFLOP/s}}, once measured
    machine_info: dict | None = None  # an isolated session's worker's, as it reported it
    hardware_state: dict | None = None  # and its hardware state (fitbench.measure.hardware.Sampler.session)
    compare_notes: list[str] = field(default_factory=list)  # --benchmark-compare: which run, or why none
    not_compared: list[str] = field(default_factory=list)  # saved benchmarks that measured something else
    gate_settings: GateSettings | None = None
    gate_baseline: list[Run] = field(default_factory=list)  # --gate's runs, read before any training
    gate: Comparison | Exception | None = None  # the gate's outcome, or why it could not run
    ended: pytest.Session | None = None  # the session, once its end (saving included) is done
    # Each dataset as loaded (or why it could not be), by source key: parsed once per session.
    loaded_datasets: dict[str, datasets.Dataset | datasets.DatasetError] = field(default_factory=dict)


class SessionRecords:
    """Collects each benchmark's record from its report (from xdist workers too)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.records: list[Record] = []
        self.entries: list[dict] = []  # as reported: what the xdist controller writes as JSON
        self.positions: dict[str, int] = {}  # test name -> place in the collection

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            for key, entry in report.user_properties:
                if key == POSITION_PROPERTY and entry is not None:
                    self.positions[report.nodeid.rsplit("::", 1)[-1]] = entry
                if key == PEAKS_PROPERTY and entry:  # measured by an isolated session's worker
                    state(self.config).peaks = entry
                if key == MACHINE_PROPERTY and entry:
                    state(self.config).machine_info = entry["machine_info"]
                    state(self.config).hardware_state = entry["hardware"]
                if key == RECORD_PROPERTY:
                    self.entries.append(entry)
                    self.records.append(Record.from_json(entry["extra_info"], entry["name"], entry["group"],
                                                         entry["params"]))

    def in_grid_order(self) -> list[Record]:
        order = state(self.config).order or self.positions  # the latter under xdist
        return sorted(self.records, key=lambda record: order.get(record.name, len(order)))


STATE_KEY = pytest.StashKey[Session]()


def state(config: pytest.Config) -> Session:
    """The session's state (made on first use)."""
    if STATE_KEY not in config.stash:
        config.stash[STATE_KEY] = Session()
    return config.stash[STATE_KEY]


def cached_dataset(config: pytest.Config, source: str | Callable[..., object],
                   args: dict | None = None) -> datasets.Dataset | datasets.DatasetError:
    """The dataset, or why it cannot be had, loaded once per session (a failed download is not
    retried per test)."""
    loaded = state(config).loaded_datasets
    key = datasets.source_key(source, args)
    if key not in loaded:
        try:
            loaded[key] = datasets.load(source, data_dir=config.getoption("data_dir"),
                                        allow_download=not config.getoption("offline"), args=args)
        except datasets.DatasetError as error:
            loaded[key] = error
    return loaded[key]
