"""A workload is data: dataset, model, optimizer, loss and checked metric, split, batch size and
one schedule per profile."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("smoke", "default", "full")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
PIPELINES = ("tf.data", "numpy")
DEFAULT_PROFILE = "default"
# Keras metric names whose direction is known; any other needs Workload.higher_is_better.
HIGHER_IS_BETTER = {
    "accuracy": True, "binary_accuracy": True, "categorical_accuracy": True,
    "sparse_categorical_accuracy": True, "top_k_categorical_accuracy": True, "auc": True,
    "precision": True, "recall": True, "f1_score": True, "r2_score": True,
    "mae": False, "mse": False, "mape": False, "msle": False, "mean_absolute_error": False,
    "mean_squared_error": False, "root_mean_squared_error": False, "mean_absolute_percentage_error": False,
    "mean_squared_logarithmic_error": False, "log_cosh_error": False,
    "sparse_top_k_categorical_accuracy": True, "acc": True,
}
# Names Model.compile takes besides keras.metrics.get's (keras/src/trainers/compile_utils.py).
COMPILE_NAMES = ("accuracy", "acc", "crossentropy", "ce")


def output_metric(metric: Any) -> tuple[str | None, Any]:
    """(the output it checks, the metric) for a model with several outputs, whose metric is given
    as {output name: metric}; (None, metric) otherwise."""
    if not isinstance(metric, Mapping):
        return None, metric
    if len(metric) != 1:
        raise ValueError(f"metric {dict(metric)!r} names {len(metric)} outputs; a workload checks one metric: give "
                         "{'output_name': metric} for the output it checks")
    ((output, inner),) = metric.items()
    return str(output), inner


def metric_name(metric: Any) -> str:
    """The name Keras logs a metric under: a string as given, a keras.metrics.Metric object's
    `name`, a function's `__name__`; for one output of several, prefixed by the output's name
    (`{"species": "accuracy"}` logs `species_accuracy`)."""
    output, metric = output_metric(metric)
    if output is not None:
        return f"{output}_{metric_name(metric)}"
    if isinstance(metric, str):
        return metric
    name = getattr(metric, "name", None)
    if isinstance(name, str) and name:
        return name
    name = getattr(metric, "__name__", None)
    if callable(metric) and isinstance(name, str) and name != "<lambda>":
        return name
    raise ValueError(f"metric {metric!r} is not a metric Keras takes: give a name ('accuracy'), a "
                     "keras.metrics.Metric object or a named function f(y_true, y_pred)")


def _snake(text: str) -> str:
    """'SparseTopKCategoricalAccuracy' -> 'sparse_top_k_categorical_accuracy'."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", text).lower()


def known_direction(metric: Any) -> bool | None:
    """Whether a higher value of `metric` is better, where fitbench knows it: by its name, or by
    its class for a Metric object (SparseTopKCategoricalAccuracy(name="top2") is a score)."""
    metric = output_metric(metric)[1]
    is_object = not isinstance(metric, str) and hasattr(metric, "get_config")
    for name in (metric_name(metric), _snake(type(metric).__name__) if is_object else ""):
        if name in HIGHER_IS_BETTER:
            return HIGHER_IS_BETTER[name]
    return None


def unknown_to_keras(name: str) -> str | None:
    """Why a metric *name* cannot be compiled ('' when it can); None when Keras is not importable here."""
    if name in COMPILE_NAMES or name in HIGHER_IS_BETTER:
        return ""
    try:
        import keras
    except ImportError:
        return None
    try:
        keras.metrics.get(name)
    except ValueError:
        close = difflib.get_close_matches(name, list(HIGHER_IS_BETTER), n=1)
        return f"metric {name!r} is not a Keras metric name" + (f" (did you mean {close[0]!r}?)" if close else "")
    return ""


@dataclass(frozen=True)
class Schedule:
    """How long a workload trains under one profile, and on how much data.

    `bound` says why the schedule differs from the notebook's (it is recorded in the
    benchmark JSON); an empty bound means this is the notebook's exact schedule.
    """

    epochs: int
    train_samples: int | None = None
    validation_samples: int | None = None
    test_samples: int | None = None
    bound: str = ""

    def __post_init__(self) -> None:
        if self.epochs < 2:
            # Epoch 1 is timed on its own (tracing); the rounds are epochs 2..N.
            raise ValueError(f"a schedule needs at least 2 epochs to have a timed round, got {self.epochs}")


@dataclass(frozen=True)
class Variant:
    """How a workload is trained, not what: precision policy, XLA, steps per execution and input
    pipeline. The default is the suite's plain training (float32, no XLA, 1 step per call of the
    train function, a tf.data pipeline); `jit_compile` is always explicit, because Keras'
    "auto" resolves to off on CPUs and under every tf.distribute strategy."""

    precision: str = "float32"  # a Keras dtype policy: float32, mixed_bfloat16, mixed_float16
    jit_compile: bool = False  # XLA
    steps_per_execution: int = 1  # training steps per call of the compiled train function
    pipeline: str = "tf.data"  # or "numpy": the notebooks' arrays through fit's own adapter

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.pipeline not in PIPELINES:
            raise ValueError(f"pipeline {self.pipeline!r} is not one of {', '.join(PIPELINES)}")
        if not isinstance(self.jit_compile, bool):
            raise ValueError(f"jit_compile must be True or False, got {self.jit_compile!r}")
        if not (isinstance(self.steps_per_execution, int) and self.steps_per_execution >= 1):
            raise ValueError(f"steps_per_execution must be a whole number >= 1, got {self.steps_per_execution!r}")

    @property
    def is_default(self) -> bool:
        return self == Variant()

    @property
    def label(self) -> str:
        """Short, for test ids and tables: 'bf16-xla-spe32-numpy'; 'f32' for the default."""
        parts = [{"float32": "f32", "mixed_bfloat16": "bf16", "mixed_float16": "fp16"}[self.precision]]
        if self.jit_compile:
            parts.append("xla")
        if self.steps_per_execution > 1:
            parts.append(f"spe{self.steps_per_execution}")
        if self.pipeline != "tf.data":
            parts.append(self.pipeline)
        return "-".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def parse(cls, settings: list[str], base: Variant | None = None) -> Variant:
        """From 'key=value' strings (--variant precision=mixed_bfloat16 --variant jit_compile=on)."""
        changes: dict[str, Any] = {}
        names = [f.name for f in dataclasses.fields(cls)]
        for setting in settings:
            key, sep, value = setting.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or key not in names:
                raise ValueError(f"--variant {setting!r}: give KEY=VALUE with KEY one of {', '.join(names)}")
            if key == "jit_compile":
                if value.lower() not in ("on", "off", "true", "false", "1", "0"):
                    raise ValueError(f"--variant {setting!r}: jit_compile is on or off")
                changes[key] = value.lower() in ("on", "true", "1")
            elif key == "steps_per_execution":
                if not value.isdigit():
                    raise ValueError(f"--variant {setting!r}: steps_per_execution is a whole number >= 1")
                changes[key] = int(value)
            else:
                changes[key] = value
        return dataclasses.replace(base or cls(), **changes)


@dataclass(frozen=True)
class Workload:
    """One training experiment. Hyperparameters are fields, so a grid is `workload.but(...)`."""

    name: str
    # A registered dataset's name (fitbench.datasets.register) or a function returning the data
    # (fitbench.measure.datasets.load), called with dataset_args.
    dataset: str | Callable[..., Any]
    model: Callable[..., Any]
    # Per profile: one Schedule for every device, or one per device kind ({"cpu": ..., "gpu": ...}).
    schedules: Mapping[str, Schedule | Mapping[str, Schedule]]
    model_args: Mapping[str, Any] = field(default_factory=dict)
    # The model's input shape; None: each sample's shape in the data.
    input_shape: tuple[int, ...] | None = None
    optimizer: str = "sgd"
    loss: str = "sparse_categorical_crossentropy"
    # The metric the test checks against its target, as Model.compile takes it: a Keras metric
    # name (accuracy, auc, mae, ...), a keras.metrics.Metric object or a function f(y_true,
    # y_pred); and its direction (None: known for Keras' metrics, see HIGHER_IS_BETTER).
    metric: Any = "accuracy"
    higher_is_better: bool | None = None
    dataset_args: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    # A count or fraction of the training images held out, or "test" to validate on the test set.
    # A count or fraction of the training samples held out, "test" to validate on the test set, or
    # None for the data's own validation split (a dataset function's "validation").
    validation: int | float | str | None = None
    validation_at: str = "start"
    pixel_scale: float = 1 / 255  # the CNN guide feeds raw 0..255 pixels (scale 1.0)
    seed: int = 42
    variant: Variant = Variant()
    # Training stops as diverged when its loss is not finite or exceeds this multiple of the
    # loss before training. A model that is learning lowers its loss; one that has blown up
    # (a learning rate far too high) lands orders of magnitude above it (3.6e13 against 2.4),
    # where no epoch of this suite's benchmarks went past 1.1x (docs/measurement.md). Not part
    # of what is measured: a guard, like a timeout.
    loss_explosion: float = 1e3

    def __post_init__(self) -> None:
        if isinstance(self.variant, Mapping):  # a grid's {"variant": {"pipeline": "numpy"}}: data, like the rest
            fields = {f.name for f in dataclasses.fields(Variant)}
            if unknown := sorted(set(self.variant) - fields):
                raise ValueError(f"workload {self.name!r}: variant setting(s) {', '.join(unknown)} unknown; a variant "
                                 f"takes {', '.join(sorted(fields))}")
            object.__setattr__(self, "variant", Variant(**self.variant))
        elif not isinstance(self.variant, Variant):
            raise ValueError(f"workload {self.name!r}: variant {self.variant!r} is not a Variant; give "
                             "Variant(pipeline='numpy', ...) or a dict of its settings")
        try:
            name = metric_name(self.metric)
        except ValueError as error:
            raise ValueError(f"workload {self.name!r}: {error}") from None
        checked = output_metric(self.metric)[1]
        if isinstance(checked, str) and (why := unknown_to_keras(checked)):
            raise ValueError(f"workload {self.name!r}: {why}; give a name Keras knows (accuracy, auc, mae, ...), a "
                             "keras.metrics.Metric object or a function f(y_true, y_pred)")
        if self.higher_is_better is None and known_direction(self.metric) is None:
            raise ValueError(f"workload {self.name!r}: metric {name!r} has no known direction; give "
                             "higher_is_better=True (a score) or False (an error)")

    @property
    def metric_name(self) -> str:
        """The checked metric's name, as Keras logs it and the record keeps it."""
        return metric_name(self.metric)

    @property
    def goal(self) -> str:
        """'>=' when a higher metric is better, '<=' when lower is."""
        higher = known_direction(self.metric) if self.higher_is_better is None else self.higher_is_better
        return ">=" if higher else "<="

    def but(self, **changes: Any) -> Workload:
        """A copy with some hyperparameters changed: `WORKLOAD.but(batch_size=512)`."""
        return dataclasses.replace(self, **changes)

    def schedule(self, profile: str, device: str = "cpu") -> Schedule:
        """The schedule of `profile` on a `device` kind (cpu, gpu, tpu)."""
        if profile not in self.schedules:
            raise KeyError(
                f"workload {self.name!r} has no schedule for profile {profile!r}; "
                f"it has {', '.join(self.schedules)}"
            )
        return per_device(self.schedules[profile], device, f"workload {self.name!r}, profile {profile!r}")


def per_device(value: Any, device: str, what: str) -> Any:
    """`value` itself, or its entry for `device` when it is a mapping by device kind."""
    if not isinstance(value, Mapping):
        return value
    if device not in value:
        raise KeyError(f"{what} has no entry for device {device!r}; it has {', '.join(value)}")
    return value[device]
