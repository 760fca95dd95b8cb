"""The one record of a benchmark: what was measured (its identity) and what it measured.

The runner produces a `Record`; the plugin writes it to pytest-benchmark's ``extra_info``
with `Record.to_json`; the session summary, the gate, the report and the CLI read it back
with `Record.from_json`, from the session in progress or from saved JSON alike. Names and
groups are pytest-benchmark's own (``name``, ``group``, ``params``), not copied.

A record says what it measured as a `Measurement`: the workload (model and its arguments,
dataset, optimizer and its settings, loss, seed, input), the schedule (epochs and sample
counts, and why it is bounded), the profile, the device kind, replicas and batch sizes,
the workers and the cluster's shape (a 2-worker run is never compared with a 1-worker one),
and the training variant (precision, XLA, steps per execution, input pipeline). Two
records are compared only when their measurements are equal; `Measurement.differences`
names the fields that are not. The model, its arguments, the optimizer and the loss are the
code under test, not how it was measured: a change to them (a pull request that adds a
layer) is compared and its verdict names the change (`Measurement.code_changes`). The
machine and the software under test are the run's (`Environment`, from pytest-benchmark's ``machine_info``).

A workload's checked metric is its own (accuracy, AUC, MAE, ...), with its goal: ``>=`` when
higher is better, ``<=`` when lower is; the target check, time to target and the gate's
metric check follow the goal.

The JSON is versioned (``fitbench_schema``). Version 1 is the untyped ``extra_info`` of
fitbench 0.1 (no schema key); version 2 (fitbench 0.1 with schemas) named every metric
accuracy. Both are migrated when read. A newer version is refused with a message naming it.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_KEY = "fitbench_schema"
SCHEMA_VERSION = 3
# What the default variant is: the suite before variants existed trained this way.
DEFAULT_VARIANT = {"precision": "float32", "jit_compile": False, "steps_per_execution": 1, "pipeline": "tf.data"}


COMPLETED, DIVERGED = "completed", "diverged"
# What is being measured rather than how: a change here is judged (and named), not incomparable.
CODE_FIELDS = ("workload.model", "workload.optimizer", "workload.loss")


class RecordError(ValueError):
    """A record that cannot be read: unknown schema, or values that cannot be measurements."""


def _finite_or_none(value: Any) -> float | None:
    """Strict JSON has no NaN or Infinity: a missing figure is null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _nan_if_none(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Measurement:
    """What a benchmark measured; two results are comparable only when these are equal."""

    profile: str
    device: str  # device kind: cpu, gpu, tpu
    replicas: int
    global_batch: int
    per_replica_batch: int
    schedule: dict[str, Any]  # epochs, train/validation/test samples, samples_per_epoch, bound
    workload: dict[str, Any]  # name, dataset, model, model_args, optimizer {name, config}, loss, seed, ...
    variant: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_VARIANT))
    # How many trainings shared the machine (pytest-xdist workers): times of 2 trainings on one
    # machine are not those of one.
    concurrent: int = 1
    # Processes that trained it together (a cluster's workers, MultiWorkerMirroredStrategy), and
    # the cluster's shape: its tasks and each worker's cores ({} outside a cluster).
    workers: int = 1
    cluster: dict[str, Any] = field(default_factory=dict)
    # TensorFlow's intra-op pool, threads (--threads or TF_NUM_INTRAOP_THREADS; 0: its default,
    # one per core): one thread's epochs are not two threads'.
    threads: int = 0

    def flat(self) -> dict[str, Any]:
        """Every field as 'dotted.name': value, for naming differences."""
        flat: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and value:
                for key, inner in value.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), inner)
            else:
                flat[prefix] = value

        walk("", asdict(self))
        return flat

    def identity(self) -> dict[str, Any]:
        """How it was measured: every field but the code under test (CODE_FIELDS)."""
        return {key: value for key, value in self.flat().items() if not _is_code(key)}

    def key(self, but: tuple[str, ...] = (), keep: tuple[str, ...] = ()) -> str:
        """The one test of "measured the same thing", as a string: two measurements are alike
        when their keys are equal. `but` names fields (or dotted prefixes: "variant", "cluster")
        allowed to differ, `keep` exceptions to it ("cluster.cores_per_worker"): the variant
        speed-ups leave out the variant, the device comparison the device, scaling the workers."""
        def named(field: str, names: tuple[str, ...]) -> bool:
            return any(field == name or field.startswith(name + ".") for name in names)

        kept = {field: value for field, value in self.identity().items()
                if not named(field, but) or named(field, keep)}
        return json.dumps(kept, sort_keys=True, default=str)

    def differences(self, other: Measurement) -> list[str]:
        """'field: mine != other' for each field of the identity that differs (a field only one
        side has included): two records measured the same thing when this is empty."""
        return _differences(self.identity(), other.identity())

    def code_changes(self, other: Measurement) -> list[str]:
        """'field: mine != other' for each field of the code under test that differs."""
        return _differences(*({k: v for k, v in m.flat().items() if _is_code(k)} for m in (self, other)))


def _is_code(key: str) -> bool:
    return any(key == name or key.startswith(name + ".") or key.startswith(name + "_") for name in CODE_FIELDS)


def _differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    out = []
    for key in list(mine) + [k for k in theirs if k not in mine]:
        a, b = mine.get(key, "(absent)"), theirs.get(key, "(absent)")
        if a != b:
            out.append(f"{key}: {a!r} != {b!r}")
    return out


@dataclass
class Epoch:
    """One epoch: its seconds, and the loss and the workload's metric on each split."""

    seconds: float
    loss: float
    metric: float  # the workload's metric on the training batches of the epoch
    val_loss: float = math.nan
    val_metric: float = math.nan
    # Evaluated after every epoch when the checked split is the test set (time to target).
    test_loss: float = math.nan
    test_metric: float = math.nan
    turn: int | None = None  # the ring's turn it ran in (interleaved runs only)
    # What the hardware did during the epoch (fitbench.measure.hardware): joules, throttled time, clocks.
    hardware: dict[str, Any] = field(default_factory=dict)


SPLITS = ("test", "validation")
GOALS = (">=", "<=")


@dataclass
class Check:
    """The target a test asserts: the metric on which split, its goal, the threshold, the value."""

    split: str  # test or validation
    metric: str  # the workload's metric: accuracy, auc, mae, ...
    goal: str  # ">=" (higher is better) or "<="
    threshold: float
    value: float

    @property
    def passed(self) -> bool:
        return reached(self.value, self.threshold, self.goal)

    @property
    def name(self) -> str:
        """'test accuracy': the metric and the split it was checked on."""
        return f"{self.split} {self.metric}"

    def describe(self) -> str:
        """'test accuracy >= 0.8'."""
        return f"{self.name} {self.goal} {self.threshold:g}"


def reached(value: float, threshold: float, goal: str) -> bool:
    """Whether `value` meets `threshold` in the direction of `goal`."""
    return value >= threshold if goal == ">=" else value <= threshold


def better(a: float, b: float, goal: str) -> bool:
    """Whether `a` is better than `b` under `goal`."""
    return a > b if goal == ">=" else a < b


@dataclass
class Record:
    measurement: Measurement
    epochs: list[Epoch]
    test_loss: float = math.nan
    test_metric: float = math.nan
    check: Check | None = None
    params: int = 0
    flops_per_sample: int = 0
    flops_unknown: str = ""  # why flops_per_sample is 0: a layer fitbench does not count (measure.flops)
    device_description: str = ""
    memory: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, float] = field(default_factory=dict)  # the test's @pytest.mark.gate thresholds
    interleave: dict[str, Any] | None = None  # the ring this run took turns in
    # A variant trained in turns with its reference variant in one process (test_variants):
    # {"variant": {...}, "epoch_seconds": [...], "turns": [...], "loss": last loss}.
    reference: dict[str, Any] | None = None
    # Training steps profiled op by op after the schedule (--explain-steps): seconds per step by
    # phase, op type and op name (fitbench.measure.opprofile), or {"error": ...}.
    op_profile: dict[str, Any] | None = None
    status: str = COMPLETED  # or DIVERGED: training stopped at the epoch whose loss was not finite
    failure: str = ""  # what happened, in one line, when not completed
    # pytest-benchmark's identity of the benchmark (not stored in extra_info: it has its own).
    name: str = ""
    group: str | None = None
    case: str = ""  # the test's parameters without the device ("" when none)
    schema: int = SCHEMA_VERSION  # the version it was read from

    def assert_accuracy(self, *_args: Any, **_kwargs: Any) -> None:
        """fitbench 0.1's check, gone in 0.2: says what replaced it."""
        raise AttributeError("Record.assert_accuracy(metric, threshold) is fitbench 0.1's; in 0.2 the workload names "
                             "its metric and the check is result.assert_target(case.split, case.threshold)")

    def assert_target(self, split: str, threshold: float, note: str = "") -> None:
        """Assert that the workload's metric on `split` ('test' or 'validation') meets `threshold`
        in the direction of its goal, and record the check. The failure message gives the value
        reached, the target and `note`."""
        __tracebackhide__ = True  # pytest shows the user's test line and this message, not this function
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: one of {', '.join(SPLITS)}")
        value = self.test_metric if split == "test" else self.val_metric
        self.check = Check(split, self.metric, self.goal, float(threshold), float(value))
        workload = self.measurement.workload
        side = "below" if self.goal == ">=" else "above"
        assert self.check.passed, (
            f"{split} {self.metric} {value:.4f} is {side} the target {self.check.describe()} "
            f"({workload.get('name')}, batch size {self.batch_size}, profile {self.profile}, "
            f"{self.device}{'; ' + note if note else ''})"
        )

    # --- derived figures: one clock, the runner's per-epoch times ---------------------------

    @property
    def experiment(self) -> str:
        """The test function: 'test_batch_size[cpu-batch_size-32]' -> 'test_batch_size'."""
        return self.name.split("[", 1)[0]

    @property
    def device(self) -> str:
        return self.measurement.device

    @property
    def profile(self) -> str:
        return self.measurement.profile

    @property
    def batch_size(self) -> int:
        return self.measurement.global_batch

    @property
    def samples_per_epoch(self) -> int:
        return int(self.measurement.schedule.get("samples_per_epoch") or 0)

    @property
    def epoch_seconds(self) -> list[float]:
        return [epoch.seconds for epoch in self.epochs]

    @property
    def steady_seconds(self) -> list[float]:
        """Epochs 2..N: the timed rounds."""
        return self.epoch_seconds[1:]

    @property
    def samples_per_joule(self) -> float:
        """Samples trained per joule the GPUs drew (NVML's energy counter), over the timed
        epochs; NaN where it was not measured."""
        joules = [e.hardware.get("gpu_joules") for e in self.epochs[1:]]
        if not joules or None in joules or not sum(joules):
            return math.nan
        return self.samples_per_epoch * len(joules) / sum(joules)

    @property
    def first_epoch_seconds(self) -> float:
        return self.epochs[0].seconds if self.epochs else math.nan

    @property
    def median_epoch_seconds(self) -> float:
        steady = self.steady_seconds
        return statistics.median(steady) if steady else math.nan

    @property
    def samples_per_second(self) -> float:
        return self.samples_per_epoch / self.median_epoch_seconds

    @property
    def seconds_per_sample(self) -> float:
        return self.median_epoch_seconds / self.samples_per_epoch

    @property
    def gflops_per_second(self) -> float:
        return self.flops_per_sample * self.samples_per_second / 1e9

    @property
    def metric(self) -> str:
        """The workload's metric (accuracy, auc, mae, ...)."""
        return self.measurement.workload.get("metric", "accuracy")

    @property
    def goal(self) -> str:
        """'>=' when a higher metric is better, '<=' when lower is."""
        return self.measurement.workload.get("goal", ">=")

    @property
    def checked_metric(self) -> str:
        """What the test checks, in words: 'test accuracy' (the test split when it checked none)."""
        return self.check.name if self.check else f"test {self.metric}"

    @property
    def val_metric(self) -> float:
        return self.epochs[-1].val_metric if self.epochs else math.nan

    @property
    def target_value(self) -> float | None:
        """The value the test checks (the test metric when it checked none)."""
        value = self.check.value if self.check else self.test_metric
        return None if value is None or math.isnan(value) else value

    @property
    def variant(self) -> dict[str, Any]:
        return self.measurement.variant

    def time_to_target(self) -> TimeToTarget:
        """Training seconds (epoch 1 included, evaluation excluded) and epochs until the checked
        metric first met its target, as MLPerf and DAWNBench rank; None with the reason when it
        never did or cannot be told."""
        if self.check is None:
            return TimeToTarget(None, None, "no target was checked")
        check = self.check
        values = [epoch.test_metric if check.split == "test" else epoch.val_metric for epoch in self.epochs]
        what = check.name
        if not any(math.isfinite(value) for value in values):
            return TimeToTarget(None, None, f"{what} was not evaluated after each epoch")
        seconds = 0.0
        for number, (epoch, value) in enumerate(zip(self.epochs, values, strict=True), start=1):
            seconds += epoch.seconds
            if math.isfinite(value) and reached(value, check.threshold, check.goal):
                return TimeToTarget(seconds, number, "", what, check.threshold)
        finite = [v for v in values if math.isfinite(v)]
        best = (max if check.goal == ">=" else min)(finite)
        return TimeToTarget(None, None, f"never reached {check.goal} {check.threshold:g} in {len(values)} epochs "
                            f"(best {best:.4f})", what, check.threshold)

    @property
    def key(self) -> str:
        """What identifies this benchmark across runs: pytest-benchmark's name."""
        return self.name

    # --- JSON -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The record as pytest-benchmark's extra_info: strict JSON (no NaN), versioned."""
        return {
            SCHEMA_KEY: SCHEMA_VERSION,
            "measurement": asdict(self.measurement),
            "device_description": self.device_description,
            "model": {"params": self.params, "flops_per_sample": self.flops_per_sample,
                      **({"flops_unknown": self.flops_unknown} if self.flops_unknown else {})},
            "epochs": [{"seconds": _finite_or_none(e.seconds), "loss": _finite_or_none(e.loss),
                        "metric": _finite_or_none(e.metric), "val_loss": _finite_or_none(e.val_loss),
                        "val_metric": _finite_or_none(e.val_metric),
                        "test_loss": _finite_or_none(e.test_loss), "test_metric": _finite_or_none(e.test_metric),
                        "turn": e.turn, **({"hardware": e.hardware} if e.hardware else {})}
                       for e in self.epochs],
            "test": {"loss": _finite_or_none(self.test_loss), "metric": _finite_or_none(self.test_metric)},
            "check": None if self.check is None else {
                "split": self.check.split, "metric": self.check.metric, "goal": self.check.goal,
                "threshold": self.check.threshold, "value": _finite_or_none(self.check.value),
                "passed": self.check.passed},
            "memory": self.memory,
            "gate": self.gate,
            "interleave": self.interleave,
            **({"reference": self.reference} if self.reference else {}),
            **({"op_profile": self.op_profile} if self.op_profile else {}),
            "status": self.status,
            "failure": self.failure,
            # For readers of the JSON (jq, notebooks); fitbench recomputes them from the epochs.
            "derived": {
                "first_epoch_seconds": _finite_or_none(self.first_epoch_seconds),
                "median_epoch_seconds": _finite_or_none(self.median_epoch_seconds),
                "samples_per_second": _finite_or_none(self.samples_per_second) if self.epochs[1:] else None,
                "gflops_per_second": _finite_or_none(self.gflops_per_second) if self.epochs[1:] else None,
                "time_to_target": self.time_to_target().as_json(),
                "samples_per_joule": _finite_or_none(self.samples_per_joule),
            },
        }

    @classmethod
    def from_json(cls, info: dict[str, Any], name: str = "", group: str | None = None,
                  params: dict[str, Any] | None = None) -> Record:
        """Read extra_info written by any fitbench version; RecordError names what is wrong."""
        if not isinstance(info, dict):
            raise RecordError("extra_info is not an object")
        version = info.get(SCHEMA_KEY, 1 if "epoch_seconds" in info else None)
        if version is None:
            raise RecordError("not a fitbench record (no fitbench_schema, no epoch_seconds)")
        if version == 1:
            info = migrate_v2(migrate_v1(info))
        elif version == 2:
            info = migrate_v2(info)
        elif version != SCHEMA_VERSION:
            raise RecordError(f"record schema {version!r} is not one this fitbench reads (1 to {SCHEMA_VERSION}); "
                              "upgrade fitbench to read it")
        try:
            known = {f.name for f in fields(Measurement)}
            measured = {k: v for k, v in info["measurement"].items() if k in known}
            if isinstance(measured["workload"].get("dataset"), dict):
                # A function's data is never scaled: earlier records named the unused pixel_scale.
                measured["workload"] = {k: v for k, v in measured["workload"].items() if k != "pixel_scale"}
            measurement = Measurement(**measured)
            check = info.get("check")
            test = info.get("test") or {}
            model = info.get("model") or {}
            record = cls(
                measurement=measurement,
                epochs=[Epoch(seconds=_nan_if_none(e.get("seconds")), loss=_nan_if_none(e.get("loss")),
                              metric=_nan_if_none(e.get("metric")), val_loss=_nan_if_none(e.get("val_loss")),
                              val_metric=_nan_if_none(e.get("val_metric")),
                              test_loss=_nan_if_none(e.get("test_loss")),
                              test_metric=_nan_if_none(e.get("test_metric")), turn=e.get("turn"),
                              hardware=e.get("hardware") or {})
                        for e in info["epochs"]],
                test_loss=_nan_if_none(test.get("loss")),
                test_metric=_nan_if_none(test.get("metric")),
                check=None if not check else Check(check["split"], check["metric"], check["goal"],
                                                   float(check["threshold"]), _nan_if_none(check.get("value"))),
                params=int(model.get("params") or 0),
                flops_per_sample=int(model.get("flops_per_sample") or 0),
                flops_unknown=str(model.get("flops_unknown") or ""),
                device_description=info.get("device_description", ""),
                memory=dict(info.get("memory") or {}),
                gate=dict(info.get("gate") or {}),
                interleave=info.get("interleave"),
                reference=info.get("reference"),
                op_profile=info.get("op_profile"),
                status=info.get("status", COMPLETED),
                failure=info.get("failure", ""),
                name=name,
                group=group,
                case=info.get("case") or case_of(params or {}),
                schema=int(version),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise RecordError(f"malformed record (schema {version}): {type(error).__name__}: {error}") from error
        return record

    def problems(self) -> list[str]:
        """Why these figures cannot be measurements (NaN, zero or negative times, NaN accuracy).
        A run that did not complete (diverged) may have stopped after any epoch."""
        out = []
        bad = [f"epoch {i + 1}: {s!r}" for i, s in enumerate(self.epoch_seconds)
               if not (math.isfinite(s) and s > 0)]
        if bad:
            out.append("epoch times must be finite and positive (" + ", ".join(bad) + ")")
        if self.status != COMPLETED:
            return out
        if len(self.epochs) < 2:
            out.append(f"{len(self.epochs)} epoch(s): a record needs epoch 1 and at least one timed round")
        if self.check is not None and not math.isfinite(self.check.value):
            out.append(f"checked {self.check.name} is {self.check.value!r}")
        if self.test_metric is not None and not math.isfinite(self.test_metric):
            out.append(f"test {self.metric} is {self.test_metric!r}")
        if not self.samples_per_epoch > 0:
            out.append("samples per epoch must be positive")
        return out


@dataclass(frozen=True)
class TimeToTarget:
    seconds: float | None
    epochs: int | None
    reason: str = ""  # why seconds is None
    metric: str = ""  # 'test accuracy'
    target: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"seconds": _finite_or_none(self.seconds), "epochs": self.epochs, "metric": self.metric or None,
                "target": self.target, "reason": self.reason or None}

    def describe(self) -> str:
        return f"{self.seconds:.1f} s ({self.epochs} ep)" if self.seconds is not None else "not reached"


def case_of(params: dict[str, Any]) -> str:
    """The case from pytest-benchmark's params: the experiment's 'case' parameter, else the other
    parameters but the device, joined ("" when there are none)."""
    if "case" in params:
        return str(params["case"])
    return "-".join(f"{value}" for key, value in params.items() if key != "device")


V1_WORKLOAD_KEYS = ("workload", "dataset", "model", "model_args", "optimizer", "loss", "seed")


def migrate_v1(info: dict[str, Any]) -> dict[str, Any]:
    """fitbench 0.1's flat extra_info -> schema 2 (fields it lacked stay absent)."""
    seconds = info.get("epoch_seconds") or []
    columns = {key: info.get(key) or [math.nan] * len(seconds)
               for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")}
    turns = info.get("epoch_turns") or [None] * len(seconds)
    metric = info.get("accuracy_metric")
    value = info.get(metric) if metric else None
    if isinstance(value, list):  # val_accuracy is per epoch: the check read the last
        value = value[-1]
    workload = {key: info.get(key) for key in V1_WORKLOAD_KEYS if key in info}
    if "workload" in workload:
        workload["name"] = workload.pop("workload")
    if isinstance(workload.get("optimizer"), str):
        workload["optimizer"] = {"name": workload["optimizer"]}
    replicas = int(info.get("replicas") or 1)
    batch = int(info.get("batch_size") or 0)
    return {
        SCHEMA_KEY: 1,
        "case": info.get("case", ""),
        "measurement": {
            "workload": workload,
            "schedule": {"epochs": info.get("epochs"), "train_samples": info.get("train_samples"),
                         "validation_samples": info.get("validation_samples"),
                         "test_samples": info.get("test_samples"),
                         "samples_per_epoch": info.get("samples_per_epoch", info.get("train_samples")),
                         "bound": info.get("schedule_bound", "")},
            "profile": info.get("profile", ""),
            "device": info.get("device", ""),
            "replicas": replicas,
            "global_batch": batch,
            "per_replica_batch": int(info.get("per_replica_batch_size") or batch // replicas),
            "variant": dict(DEFAULT_VARIANT),
            "concurrent": 1,
        },
        "device_description": info.get("device_description", ""),
        "model": {"params": info.get("params"), "flops_per_sample": info.get("flops_per_sample")},
        "epochs": [{"seconds": s, "loss": columns["train_loss"][i], "accuracy": columns["train_accuracy"][i],
                    "val_loss": columns["val_loss"][i], "val_accuracy": columns["val_accuracy"][i],
                    "turn": turns[i] if i < len(turns) else None} for i, s in enumerate(seconds)],
        "test": {"loss": info.get("test_loss"), "accuracy": info.get("test_accuracy")},
        "check": None if metric is None or info.get("accuracy_threshold") is None else
        {"metric": metric, "threshold": info["accuracy_threshold"], "value": value},
        "memory": {key: info[key] for key in info if "memory" in key or "rss" in key},
        "gate": info.get("gate") or {},
        "interleave": info.get("interleave"),
    }


V2_CHECKS = {"test_accuracy": "test", "val_accuracy": "validation"}


def migrate_v2(info: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 (every metric was accuracy) -> 3: the workload's metric and goal, metric fields."""
    measurement = dict(info["measurement"])
    measurement["workload"] = {**measurement.get("workload", {}), "metric": "accuracy", "goal": ">="}
    renamed = {"accuracy": "metric", "val_accuracy": "val_metric", "test_accuracy": "test_metric"}
    check = info.get("check")
    test = info.get("test") or {}
    return {
        **info,
        "measurement": measurement,
        "epochs": [{renamed.get(key, key): value for key, value in epoch.items()} for epoch in info["epochs"]],
        "test": {"loss": test.get("loss"), "metric": test.get("accuracy")},
        "check": None if not check else {"split": V2_CHECKS.get(check["metric"], check["metric"]),
                                         "metric": "accuracy", "goal": ">=", "threshold": check["threshold"],
                                         "value": check.get("value")},
    }


# --- the environment of a run: machine and software under test ----------------------------

MACHINE_KEYS = ("system", "machine", "cpu_name", "gpus")
SOFTWARE_KEYS = ("python", "tensorflow", "keras", "cuda_version", "cudnn_version", "nvidia_driver")
SOFTWARE_NAMES = {"python": "Python", "tensorflow": "TensorFlow", "keras": "Keras", "cuda_version": "CUDA",
                  "cudnn_version": "cuDNN", "nvidia_driver": "NVIDIA driver"}


@dataclass(frozen=True)
class Environment:
    """Where a run was measured: the machine, and the software under test."""

    machine: dict[str, Any]
    software: dict[str, Any]

    @classmethod
    def from_machine_info(cls, machine_info: dict[str, Any]) -> Environment:
        machine = {key: machine_info.get(key) for key in MACHINE_KEYS}
        # pytest-benchmark's own name of the CPU (py-cpuinfo), which can tell apart two models
        # that fitbench's cpu_name calls alike; compared only where both runs have it.
        machine["cpu_brand"] = (machine_info.get("cpu") or {}).get("brand_raw")
        return cls(machine, {key: machine_info.get(key) for key in SOFTWARE_KEYS})

    def describe(self) -> str:
        gpus = ", ".join(self.machine.get("gpus") or []) or "no GPU"
        versions = ", ".join(f"{SOFTWARE_NAMES[k]} {v}" for k, v in self.software.items() if v)
        return f"{self.machine.get('cpu_name') or '?'}, {gpus}; {versions}"
