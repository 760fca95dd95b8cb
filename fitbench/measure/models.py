"""A workload's model is a function of the input shape and its model_args (and `classes`, the
data's class count, when it takes that parameter); this module calls it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any


def arguments(model: Callable[..., Any], model_args: Mapping[str, Any], classes: int | None) -> dict[str, Any]:
    """A workload's model arguments, plus the data's class count for a model function that takes
    `classes` and was not given it."""
    args = dict(model_args)
    try:
        takes_classes = "classes" in inspect.signature(model).parameters
    except (TypeError, ValueError):
        takes_classes = False
    if takes_classes and "classes" not in args and classes is not None:
        args["classes"] = classes
    return args
