"""Training steps profiled op by op, outside every timed round (`fitbench explain`, `--explain-steps`).

After a test's schedule, the runner trains K more steps of the same model, batch, variant and
device (warm: the schedule has run) under TensorFlow's profiler, in chunks of `CHUNK` steps,
each chunk in the session's own turn of an interleaved run. Each step is a `tf.profiler`
trace event named `STEP_EVENT`; the profiler writes an XSpace
(`plugins/profile/<run>/<host>.xplane.pb`, openable in TensorBoard's profile plugin or
Perfetto), kept in the explain directory. `summarize` reads it into seconds per step:

* by op type (the `name:Type` events TensorFlow's executor records on its compute threads; on
  a GPU or TPU the device planes' kernels and HLO ops, named by their `tf_op` stat), and by op
  (`name:Type`, without the train function's wrappers) for the `TOP_NAMES` that hold the most time;
* by phase: `input` (the iterator's get-next, waiting for the input pipeline), `input pipeline`
  (the ops the pipeline's own threads run, such as a map function's, typed `tf.data:Type`),
  `optimizer` (ops in the optimizer's name scope), `all-reduce` (collective ops), `copies` (host-device copies,
  sends and receives), `compute` (every other op) and `other`: the step's wall time not covered
  by any of the step's ops or input waits (Python and framework overhead).

Op times are summed over threads, so on a multi-threaded CPU the phases can add up to more
than the step; `other` is wall time outside the union of their intervals. The summary is
plain data (`Record.op_profile`); fitbench.compare.explain compares two of them.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

STEP_EVENT = "fitbench_step"
CHUNK = 10  # profiled steps per turn: one profiler session each, after one unprofiled warm step
PHASES = ("input", "input pipeline", "compute", "optimizer", "all-reduce", "copies", "other")
PIPELINE = "tf.data:"  # the op types of the input pipeline's own threads: "tf.data:MatMul"
TOP_NAMES = 12  # op names kept per profile: the ones with the most time

# TensorFlow's executor records each kernel as "scope/op_name:OpType" (tsl TraceMe, kernel
# events); every other host event ("ExecutorState::Process", "EagerLocalExecute: X") fails this.
_OP_EVENT = re.compile(r"^(?P<name>[^:\s][^:]*):(?P<type>[A-Za-z_][\w.]*)$")
_INPUT_WAIT = "IteratorGetNextOp::DoCompute"  # the consumer's get-next, waiting included
_COLLECTIVE = re.compile(r"^(_?Collective|Nccl|AllReduce)")
_COPY_TYPES = re.compile(r"^(_Send|_Recv|_HostSend|_HostRecv|Memcpy|_CopyToDevice|CopyToDevice|Copy$)")
_HOST_PLANE = "/host:CPU"
_DEVICE_PLANE = re.compile(r"^/device:(GPU|TPU):\d+$")
_DEVICE_LINES = re.compile(r"^(Stream #|XLA Ops)")  # kernels on a GPU stream; a TPU core's HLO ops


class ProfileError(RuntimeError):
    """A profile could not be taken or read; the record keeps the message instead."""


def _stat_names(plane) -> dict[int, str]:
    return {key: value.name for key, value in plane.stat_metadata.items()}


def _stat(event, stat_names: dict[int, str], wanted: str) -> Any:
    for stat in event.stats:
        if stat_names.get(stat.metadata_id) != wanted:
            continue
        kind = stat.WhichOneof("value")
        if kind == "ref_value":  # a string kept once in the plane's stat metadata
            return stat_names.get(stat.ref_value)
        return getattr(stat, kind) if kind else None
    return None


def _events(plane, lines: Iterable | None = None):
    """(name, start ps, duration ps, event) for every event of `lines` (default: all)."""
    metadata = plane.event_metadata
    for line in plane.lines if lines is None else lines:
        origin = line.timestamp_ns * 1000
        for event in line.events:
            yield metadata[event.metadata_id].name, origin + event.offset_ps, event.duration_ps, event


def _steps(space) -> list[tuple[int, int]]:
    """(start, end) in ps of each STEP_EVENT, in order."""
    found = []
    for plane in space.planes:
        if plane.name == _HOST_PLANE:
            found += [(start, start + duration) for name, start, duration, _ in _events(plane) if name == STEP_EVENT]
    return sorted(found)


def _device_ops(space) -> list[tuple[str, str, int, int]]:
    """(op name, op type, start, duration) of each kernel or HLO op on a GPU or TPU plane."""
    ops = []
    for plane in space.planes:
        if not _DEVICE_PLANE.match(plane.name):
            continue
        stat_names = _stat_names(plane)
        lines = [line for line in plane.lines if _DEVICE_LINES.match(line.name)]
        for name, start, duration, event in _events(plane, lines):
            tf_op = _stat(event, stat_names, "tf_op")
            matched = _OP_EVENT.match(str(tf_op)) if tf_op else None
            # A kernel launched by a TensorFlow op names it; a copy (MemcpyH2D, ...) is its own type.
            op_name, op_type = (matched["name"], matched["type"]) if matched else (name, name)
            ops.append((op_name, op_type, start, duration))
    return ops


def _host_ops(space) -> tuple[list[tuple[str, str, int, int]], list[tuple[int, int]]]:
    """The host's op events and its input waits (start, duration). The ops of the input
    pipeline's own threads (a map function's, on tf.data's lines) are typed `tf.data:Type`."""
    ops, waits = [], []
    for plane in space.planes:
        if plane.name != _HOST_PLANE:
            continue
        for line in plane.lines:
            prefix = PIPELINE if line.name.startswith("tf_data") else ""
            for name, start, duration, _ in _events(plane, [line]):
                if name == _INPUT_WAIT:
                    waits.append((start, duration))
                    continue
                matched = _OP_EVENT.match(name)
                if matched:
                    ops.append((matched["name"], prefix + matched["type"], start, duration))
    return ops, waits


def phase_of(op_name: str, op_type: str, optimizer_scopes: Sequence[str]) -> str:
    """The phase an op's time counts in (not `input` or `other`, which come from elsewhere)."""
    if op_type.startswith(PIPELINE):
        return "input pipeline"
    if _COLLECTIVE.match(op_type):
        return "all-reduce"
    if _COPY_TYPES.match(op_type):
        return "copies"
    parts = op_name.split("/")
    if any(scope in parts for scope in optimizer_scopes):
        return "optimizer"
    return "compute"


def short_name(op_name: str) -> str:
    """An op's name without the wrappers every train function adds."""
    for wrapper in ("StatefulPartitionedCall/", "PartitionedCall/"):
        while op_name.startswith(wrapper):
            op_name = op_name[len(wrapper):]
    return op_name


def _union(intervals: list[tuple[int, int]]) -> int:
    covered, reach = 0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            covered += end - start
            reach = end
        elif end > reach:
            covered += end - reach
            reach = end
    return covered


def summarize(spaces: Sequence, optimizer_scopes: Sequence[str], steps_per_call: int = 1) -> dict[str, Any]:
    """Seconds per step of the XSpaces of one profile (one per chunk), by op type, op name (the
    `TOP_NAMES` with the most time) and phase; see the module docstring."""
    parts = [_summarize_space(space, optimizer_scopes) for space in spaces]
    if not parts:
        raise ProfileError("no profile was written")
    count = sum(len(part["step_seconds"]) for part in parts)

    def joined(key: str) -> dict[str, list[float]]:
        names = sorted({name for part in parts for name in part[key]})
        return {name: [v for part in parts for v in part[key].get(name, [0.0] * len(part["step_seconds"]))]
                for name in names}

    per_step = 1.0 / max(1, steps_per_call)

    def scaled(values: list[float]) -> list[float]:
        return [value * per_step for value in values]

    names = joined("op_names")
    kept = sorted(names, key=lambda name: sum(names[name]), reverse=True)[:TOP_NAMES]
    return {
        "steps": count,
        "steps_per_call": steps_per_call,
        "step_seconds": scaled([v for part in parts for v in part["step_seconds"]]),
        "phases": {phase: scaled(values) for phase, values in joined("phases").items()},
        "op_types": {name: scaled(values) for name, values in joined("op_types").items()},
        "op_names": {name: scaled(names[name]) for name in kept},
        "device_ops": any(part["device_ops"] for part in parts),
    }


def _summarize_space(space, optimizer_scopes: Sequence[str]) -> dict[str, Any]:
    """One XSpace's seconds per call. An event belongs to the step that started last before it (a
    GPU kernel may end after its step's host call returned); events before the first step are
    not counted."""
    steps = _steps(space)
    if not steps:
        raise ProfileError(f"the profile has no {STEP_EVENT!r} events (no step was traced)")
    ops = _device_ops(space)
    device = bool(ops)
    host_ops, waits = _host_ops(space)
    # On a CPU the executor's kernels are the ops; on a GPU or TPU they only launch the device's,
    # and the host keeps only the input pipeline's own work.
    ops = ops + [op for op in host_ops if op[1].startswith(PIPELINE)] if device else host_ops
    starts = [start for start, _ in steps]
    count = len(steps)
    by_type: dict[str, list[float]] = defaultdict(lambda: [0.0] * count)
    by_name: dict[str, list[float]] = defaultdict(lambda: [0.0] * count)
    phases = {phase: [0.0] * count for phase in PHASES}
    busy: list[list[tuple[int, int]]] = [[] for _ in steps]

    def step_of(start: int) -> int | None:
        index = bisect.bisect_right(starts, start) - 1
        return index if index >= 0 else None

    for op_name, op_type, start, duration in ops:
        index = step_of(start)
        if index is None:
            continue
        seconds = duration / 1e12
        by_type[op_type][index] += seconds
        by_name[f"{short_name(op_name)}:{op_type}"][index] += seconds
        phase = phase_of(op_name, op_type, optimizer_scopes)
        phases[phase][index] += seconds
        if phase != "input pipeline":  # its threads work beside the step, not in it
            busy[index].append((start, start + duration))
    for start, duration in waits:
        index = step_of(start)
        if index is not None:
            phases["input"][index] += duration / 1e12
            busy[index].append((start, start + duration))
    step_seconds = [(end - start) / 1e12 for start, end in steps]
    for index, (start, end) in enumerate(steps):
        inside = [(max(a, start), min(b, end)) for a, b in busy[index] if b > start and a < end]
        phases["other"][index] = max(0.0, step_seconds[index] - _union(inside) / 1e12)
    return {"step_seconds": step_seconds, "phases": phases, "op_types": dict(by_type),
            "op_names": dict(by_name), "device_ops": device}


def read_space(path: Path):
    """One `.xplane.pb` file as TensorFlow's XSpace protobuf."""
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError as error:  # pragma: no cover - depends on the TensorFlow release
        raise ProfileError(f"this TensorFlow has no XSpace protobuf (tensorflow.tsl.profiler): {error}") from error
    space = xplane_pb2.XSpace()
    try:
        space.ParseFromString(path.read_bytes())
    except Exception as error:  # noqa: BLE001 - protobuf's DecodeError and OSError alike
        raise ProfileError(f"cannot read the profile {path}: {error}") from error
    return space
