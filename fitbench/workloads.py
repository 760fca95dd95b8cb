"""A workload is data: dataset, model, optimizer, split, batch size and one schedule per profile."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("smoke", "default", "full")
DEFAULT_PROFILE = "default"


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
class Workload:
    """One training experiment. Hyperparameters are fields, so a grid is `workload.but(...)`."""

    name: str
    dataset: str
    model: Callable[..., Any]
    # Per profile: one Schedule for every device, or one per device kind ({"cpu": ..., "gpu": ...}).
    schedules: Mapping[str, Schedule | Mapping[str, Schedule]]
    model_args: Mapping[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] = (28, 28)
    optimizer: str = "sgd"
    loss: str = "sparse_categorical_crossentropy"
    batch_size: int = 32
    # A count or fraction of the training images held out, or "test" to validate on the test set.
    validation: int | float | str = 5000
    validation_at: str = "start"
    pixel_scale: float = 1 / 255  # the CNN guide feeds raw 0..255 pixels (scale 1.0)
    seed: int = 42

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
