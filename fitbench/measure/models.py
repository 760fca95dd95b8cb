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


def contract_problem(model: Callable[..., Any], model_args: Mapping[str, Any]) -> str | None:
    """Why `model` cannot be called as fitbench calls it (`model(input_shape=..., **model_args)`,
    plus `classes=` when it takes that parameter), in one line with the fix; None when it can.
    Checked at collection, before anything trains."""
    try:
        signature = inspect.signature(model)
    except (TypeError, ValueError):
        return None  # a builtin or C callable: found out when it is called
    args = arguments(model, model_args, classes=10)  # any count: only the names matter here
    try:
        signature.bind(input_shape=(1,), **args)
    except TypeError as error:
        name = getattr(model, "__qualname__", repr(model))
        return (f"the model function {name}{signature} cannot be called as fitbench calls it, "
                f"{name}(input_shape=..., **model_args{', classes=...' if 'classes' in args else ''}): {error}; "
                "a model function takes `input_shape`, `classes` (the data's class count) if it needs it, "
                "and its other arguments from the workload's model_args")
    return None
