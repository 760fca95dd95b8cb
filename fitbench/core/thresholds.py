"""The gate's policy: thresholds (defaults, per benchmark, from a file) and the checks on its
settings. The defaults live here and only here; fitbench.core.options declares them as options."""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ALPHA = 0.05  # the chance of any false alarm over all benchmarks of a comparison (Holm)
# The run-to-run noise assumed when it is unknown (one run a side, not interleaved): the sd of a
# run's log median epoch time. Measured on this project's shared 2-vCPU VM: 0.125 at smoke scale
# (docs/gating.md: Measured trust); a whole run there was up to 1.58x slower than the next with no change.
# A quiet dedicated runner drifts far less: measure yours (`fitbench noise`) and pass it. The gate
# assumes more where the runs themselves show more (gate.assumed_run_noise: their epochs' spread,
# and the share of the machine other processes took from one side and not the other).
ASSUMED_RUN_NOISE = 0.125
# The session-to-session spread assumed for interleaved runs (the sd of a session's own log
# ratio, which no pair within it can average out), and the floor of one estimated from several
# rounds: 1.7% was the spread of a round's ratio on all benchmarks, quiet, on the shared 2-vCPU
# VM (docs/gating.md: Measured trust). A busy machine's was 5.3%: rounds estimate it there.
ASSUMED_SESSION_NOISE = 0.017


@dataclass(frozen=True)
class Thresholds:
    time: float = 0.05  # relative slowdown of the steady-state epoch
    # Largest tolerated worsening of the checked metric, in its own units, against its goal
    # (0.02 = 2 points of accuracy or AUC; set it per benchmark for an error such as MAE).
    metric: float = 0.02
    # Relative slowdown of epoch 1 (tracing): one value a run, and bimodal: unchanged runs on a
    # 2-vCPU VM ranged 0.49-1.64 s. It is gated only with enough runs a side for a rank test.
    first_epoch: float = 1.0

    def but(self, values: dict[str, Any]) -> Thresholds:
        unknown = set(values) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown gate threshold {', '.join(sorted(unknown))}: "
                             f"use {', '.join(asdict(self))}")
        changed = {}
        for key, value in values.items():
            try:
                changed[key] = float(value)
            except (TypeError, ValueError):
                changed[key] = math.nan
            if not (math.isfinite(changed[key]) and changed[key] >= 0):
                raise ValueError(f"gate threshold {key}={value!r}: give a number >= 0")
        return Thresholds(**{**asdict(self), **changed})


DEFAULTS = Thresholds()


def load_thresholds(path: str | None) -> list[tuple[str, dict[str, float]]]:
    """A JSON object {glob on benchmark name or group: {time, metric, first_epoch}}."""
    if not path:
        return []
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read gate thresholds ({error}); expected JSON like "
                         '{"test_my_cnn*": {"time": 0.10}}') from error
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise ValueError(f"{path}: expected a JSON object of glob -> {{time, metric, first_epoch}}")
    for values in document.values():
        Thresholds().but(values)  # validates the names and values
    return list(document.items())


def thresholds_for(name: str, group: str | None, marker: dict[str, float], defaults: Thresholds,
                   overrides: list[tuple[str, dict[str, float]]]) -> Thresholds:
    """A benchmark's thresholds: the defaults, then the file's globs, then its own marker."""
    chosen = defaults
    for pattern, values in overrides:
        if fnmatch.fnmatchcase(name, pattern) or (group and fnmatch.fnmatchcase(group, pattern)):
            chosen = chosen.but(values)
    return chosen.but(marker or {})


def parse_alpha(value: Any) -> float:
    try:
        alpha = float(value)
    except (TypeError, ValueError):
        alpha = math.nan
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha {value!r}: give the false-alarm rate as a fraction in (0, 0.5), such as 0.05")
    return alpha


def parse_run_noise(text: Any) -> float | str:
    """'auto' or a non-negative number (the sd of a run's log median epoch time)."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"run noise {text!r}: give 'auto' or a number >= 0 such as 0.08 (8% from run to run)")
    return value
