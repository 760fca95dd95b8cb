"""The run's own section of a pytest-benchmark JSON file (its ``"fitbench"`` key), beside the
records: what the whole session measured with, typed and versioned like the record.

Written by the plugin at the end of a session (and rewritten after every test while it runs,
with ``partial`` true), extended by `fitbench workers --scaling` (``scaling``); read through
`RunInfo.from_json` by every reader (the gate, the report, the history). Version 2 is the
first typed one; files without a version (or with 1) are read as far as their keys go.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

KEY = "fitbench"  # where the section sits in the JSON document
RUN_SCHEMA = 2


class RunInfoError(ValueError):
    """A run section this fitbench cannot read."""


@dataclass
class RunInfo:
    schema: int = RUN_SCHEMA
    version: str = ""  # the fitbench that measured
    package: str = ""  # where that fitbench was imported from (fitbench ab runs two checkouts)
    profile: str = ""
    cpu_replicas: int = 1
    cluster: dict[str, Any] | None = None  # the session's cluster (fitbench workers, Slurm, TF_CONFIG)
    # True while the session runs (the file is rewritten after each test) and when it was
    # interrupted: the file then holds the benchmarks that finished.
    partial: bool = False
    device_comparison: list[dict[str, Any]] = field(default_factory=list)
    variant_speedups: list[dict[str, Any]] = field(default_factory=list)
    peak_gflops: dict[str, dict[str, float]] = field(default_factory=dict)  # {kind: {precision: GFLOP/s}}
    hardware: dict[str, Any] = field(default_factory=dict)  # driver, power limits, clocks, CPU governor
    # Tests that ended before a timed round (a divergence in epoch 1): no pytest-benchmark entry.
    records_without_rounds: list[dict[str, Any]] = field(default_factory=list)
    scaling: list[dict[str, Any]] = field(default_factory=list)  # fitbench workers --scaling's figures

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> RunInfo:
        """The section of a pytest-benchmark JSON document (empty when it has none)."""
        section = document.get(KEY)
        if not isinstance(section, dict):
            return cls(schema=0)
        schema = section.get("schema", 0)
        if not isinstance(schema, int) or schema > RUN_SCHEMA:
            raise RunInfoError(f"run section schema {schema!r} is newer than this fitbench reads (up to "
                               f"{RUN_SCHEMA}); upgrade fitbench to read it")
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in section.items() if key in known and value is not None}
        values["cluster"] = section.get("cluster")
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return asdict(replace(self, schema=RUN_SCHEMA))


def update(document: dict[str, Any], **changes: Any) -> RunInfo:
    """Change some of a document's run section in place (creating it); the new section."""
    info = replace(RunInfo.from_json(document), **changes)
    document[KEY] = info.to_json()
    return info
