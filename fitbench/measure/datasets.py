"""The one dataset loader: a registered dataset by name, or a user's function.

A workload's dataset is either

* a registered name: a loader registered with `register(name, loader)` (a repository's
  conftest.py registers its own datasets), called with the data directory (``--data-dir`` or
  ``FITBENCH_DATA_DIR``) and whether it may download; or
* a function (with the workload's ``dataset_args``) that returns the data as a mapping with
  ``train`` and ``test`` and, optionally, ``validation``: each an ``(x, y)`` pair of NumPy
  arrays, or a finite ``tf.data.Dataset`` of unbatched ``(x, y)`` elements (read into arrays
  once). Shapes, classes and sample counts come from the data. Its record names the function,
  its arguments and a fingerprint of the content (shapes, dtypes, a hash of the first rows),
  so that two different datasets never compare as alike.

A registered dataset's record names it by its name.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from typing import Any, Protocol

import numpy as np

DATA_DIR_ENV = "FITBENCH_DATA_DIR"


class DatasetError(Exception):
    """Base class of the errors this module raises."""


class DatasetNotFound(DatasetError):
    """No location in the lookup order holds the dataset."""


class CorruptDataset(DatasetError):
    """A dataset file exists but its content is not valid (the message names the file, the
    problem and the fix)."""


class UnreadableDataset(DatasetError):
    """A dataset file exists but cannot be read (permissions)."""


@dataclass(frozen=True)
class Dataset:
    """A dataset's arrays as loaded: a registered loader's (uint8 images scaled by the workload's
    pixel_scale when `images`), or what a user's function returned."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    x_val: np.ndarray | None = None  # a function's own validation split
    y_val: np.ndarray | None = None
    images: bool = True  # uint8 pixels, scaled by pixel_scale and reshaped by split()
    # What identifies it in a record: the registered name, or {function, args, fingerprint}.
    identity: str | Mapping[str, Any] = ""
    classes: int | None = field(default=None)  # integer labels: how many classes (from the data)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"source={self.source!r})"
        )


class Loader(Protocol):
    """A registered dataset's loader: the data directory (None: the loader's own lookup) and
    whether it may download. Raises DatasetNotFound, CorruptDataset or UnreadableDataset."""

    def __call__(self, data_dir: str | os.PathLike | None, allow_download: bool) -> Dataset: ...


REGISTERED: dict[str, Loader] = {}


def register(name: str, loader: Loader) -> None:
    """Make `name` a dataset a workload can name (``Workload(dataset=name)``); registering a name
    again replaces its loader."""
    REGISTERED[name] = loader


def load(source: str | Callable[..., Any], data_dir: str | os.PathLike | None = None, allow_download: bool = True,
         args: Mapping[str, Any] | None = None) -> Dataset:
    """A workload's dataset: a user's function's data (`from_function`), or a registered one (its
    loader given the data directory: `data_dir`, else ``FITBENCH_DATA_DIR``)."""
    if callable(source):
        return from_function(source, args or {})
    if args:
        raise ValueError(f"dataset {source!r} is a registered dataset: it takes no dataset_args")
    if source not in REGISTERED:
        raise DatasetError(f"unknown dataset {source!r} (registered: {', '.join(sorted(REGISTERED)) or 'none'}); "
                              "register a loader with fitbench.datasets.register(name, loader) in your conftest.py, "
                              "or give the workload a function that returns the data")
    dataset = REGISTERED[source](data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV), allow_download)
    return dataset if dataset.identity else dataclass_replace(dataset, identity=source)


def source_key(source: str | Callable[..., Any], args: Mapping[str, Any] | None = None) -> str:
    """One string per distinct dataset request (a session caches each dataset once)."""
    return describe_source(source) + json.dumps(_plain(args or {}), sort_keys=True, default=repr)


def describe_source(source: str | Callable[..., Any]) -> str:
    """'my_dataset' (a registered name), or the function's qualified name 'module.function'."""
    if isinstance(source, str):
        return source
    return f"{getattr(source, '__module__', '?')}.{getattr(source, '__qualname__', repr(source))}"


def from_function(function: Callable[..., Any], args: Mapping[str, Any]) -> Dataset:
    """Call a user's dataset function and check what it returned; DatasetError names the problem
    and the shape it should have."""
    name = describe_source(function)
    expected = ("return {'train': (x, y), 'validation': (x, y), 'test': (x, y)} of NumPy arrays "
                "(or unbatched tf.data.Datasets of (x, y)); 'validation' is optional")
    try:
        signature = inspect.signature(function)
        signature.bind(**args)
    except TypeError as error:
        raise DatasetError(f"dataset function {name}{signature} cannot be called with dataset_args "
                           f"{dict(args)!r}: {error}") from error
    except ValueError:  # no signature to read (a builtin): found out when it is called
        pass
    try:
        returned = function(**args)
    except Exception as error:  # the user's code: one line naming it; the traceback is chained
        raise DatasetError(f"dataset function {name} raised {type(error).__name__}: {error}") from error
    if not isinstance(returned, Mapping) or not {"train", "test"} <= set(returned) \
            or set(returned) - {"train", "validation", "test"}:
        got = sorted(returned) if isinstance(returned, Mapping) else type(returned).__name__
        raise DatasetError(f"dataset function {name} returned {got}; it must {expected}")
    parts = {part: _arrays(name, part, value, expected) for part, value in returned.items()}
    x_val, y_val = parts.get("validation", (None, None))
    for part, (x, y) in parts.items():
        if len(x) != len(y) or len(x) == 0:
            raise DatasetError(f"dataset function {name}: {part} has {len(x)} inputs and {len(y)} targets; "
                               "give as many of each, at least one")
        if x.shape[1:] != parts["train"][0].shape[1:]:
            raise DatasetError(f"dataset function {name}: {part} inputs have shape {x.shape[1:]} per sample, "
                               f"train inputs {parts['train'][0].shape[1:]}")
    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    classes = None
    if np.issubdtype(y_train.dtype, np.integer) and y_train.ndim == 1:
        classes = int(max(int(y.max()) for _, y in parts.values())) + 1
    identity = {"function": name, "args": _plain(dict(args)), "fingerprint": fingerprint(parts)}
    return Dataset(name, x_train, y_train, x_test, y_test, source=f"function {name}", x_val=x_val, y_val=y_val,
                   images=False, identity=identity, classes=classes)


def _arrays(name: str, part: str, value: Any, expected: str) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf  # only for a function that returns tf.data

    if isinstance(value, tf.data.Dataset):
        if value.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise DatasetError(f"dataset function {name}: {part} is an infinite tf.data.Dataset; give a finite "
                               "one (no repeat()), fitbench makes the epochs")
        elements = list(value.as_numpy_iterator())
        if not elements or not all(isinstance(e, tuple) and len(e) == 2 for e in elements[:1]):
            raise DatasetError(f"dataset function {name}: {part} must yield unbatched (x, y) pairs")
        return np.stack([e[0] for e in elements]), np.stack([e[1] for e in elements])
    if not (isinstance(value, tuple | list) and len(value) == 2):
        raise DatasetError(f"dataset function {name}: {part} is {type(value).__name__}; it must {expected}")
    x, y = (np.asarray(array) for array in value)
    for what, array in (("inputs", x), ("targets", y)):
        if array.dtype.kind not in "biuf" or array.ndim == 0:
            raise DatasetError(f"dataset function {name}: {part} {what} are {array.dtype} of shape {array.shape}; "
                               "give numeric arrays with one row per sample")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise DatasetError(f"dataset function {name}: {part} {what} hold NaN or infinite values")
    return x, y


def fingerprint(parts: Mapping[str, tuple[np.ndarray, np.ndarray]], rows: int = 256) -> str:
    """A short content hash: every part's shapes and dtypes, and the bytes of its first rows."""
    digest = hashlib.sha256()
    for part in sorted(parts):
        for array in parts[part]:
            digest.update(f"{part}:{array.shape}:{array.dtype.str};".encode())
            digest.update(np.ascontiguousarray(array[:rows]).tobytes())
    return "sha256:" + digest.hexdigest()[:16]


def _plain(value: Any) -> Any:
    """JSON-able: the arguments as a record stores them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


@dataclass(frozen=True)
class Splits:
    """Train, validation and test arrays ready for a model: float32 in [0, 1], int32 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


def held_out_count(dataset: Dataset, validation: int | float | str | None) -> int:
    """How many training samples `validation` holds out (0 for the test set or the data's own split)."""
    total = len(dataset.y_train)
    if validation is None:
        if dataset.x_val is None:
            raise ValueError(f"{dataset.name} has no validation split of its own: give the workload "
                             "validation= a count or fraction of the training samples, or 'test'")
        held_out = 0
    elif validation == "test":
        held_out = 0
    elif isinstance(validation, str):
        raise ValueError(f"validation={validation!r}: give a count, a fraction, 'test', or None")
    else:
        held_out = int(round(validation * total)) if isinstance(validation, float) else int(validation)
    if not 0 <= held_out < total:
        raise ValueError(f"validation={validation!r} leaves no training samples out of {total}")
    return held_out


def split_sizes(dataset: Dataset, validation: int | float | str | None, train_samples: int | None = None,
                validation_samples: int | None = None, test_samples: int | None = None) -> dict[str, int]:
    """The train and validation sample counts `split` gives, without building its arrays."""
    held_out = held_out_count(dataset, validation)

    def kept(count: int, keep: int | None) -> int:
        return count if keep is None else min(count, keep)

    if validation is None:
        val = kept(len(dataset.y_val), validation_samples)
    elif held_out == 0:  # the test set validates
        val = kept(len(dataset.y_test), test_samples)
    else:
        val = kept(held_out, validation_samples)
    return {"train": kept(len(dataset.y_train) - held_out, train_samples), "validation": val}


def split(
    dataset: Dataset,
    validation: int | float | str | None,
    validation_at: str = "start",
    input_shape: tuple[int, ...] | None = None,
    train_samples: int | None = None,
    validation_samples: int | None = None,
    test_samples: int | None = None,
    pixel_scale: float = 1 / 255,
) -> Splits:
    """Train, validation and test arrays for a model (inputs float32 when floating or images).

    `validation` is a count or a fraction of the training samples to hold out, ``"test"`` to
    validate on the test set (as the CNN guide does), or None for the data's own validation
    split (a dataset function's ``validation``); `validation_at` says whether held-out samples
    are the first ones (``start``, as the batch-size notebook slices them) or the last ones
    (``end``, as Keras' ``validation_split`` takes them). The optional ``*_samples`` keep
    only the first N of each part (a bounded schedule, or the TPU-friendly trims of the CNN
    guide). Registered images are multiplied by `pixel_scale` (1/255 gives [0, 1]) and
    reshaped to `input_shape` (None: as stored).
    """
    total = len(dataset.y_train)
    held_out = held_out_count(dataset, validation)
    if validation_at == "start":
        val, train = slice(0, held_out), slice(held_out, total)
    elif validation_at == "end":
        train, val = slice(0, total - held_out), slice(total - held_out, total)
    else:
        raise ValueError(f"validation_at must be 'start' or 'end', not {validation_at!r}")

    def prepare(inputs: np.ndarray, targets: np.ndarray, keep: int | None):
        inputs, targets = inputs[:keep], targets[:keep]
        if dataset.images:
            shape = input_shape or inputs.shape[1:]
            inputs = (inputs.astype(np.float32) * np.float32(pixel_scale)).reshape((len(inputs), *shape))
        else:
            inputs = inputs.astype(np.float32) if inputs.dtype.kind == "f" else inputs
            if input_shape is not None:
                inputs = inputs.reshape((len(inputs), *input_shape))
        targets = targets.astype(np.int32) if targets.dtype.kind in "iub" else targets.astype(np.float32)
        return inputs, targets

    x_train, y_train = prepare(dataset.x_train[train], dataset.y_train[train], train_samples)
    x_test, y_test = prepare(dataset.x_test, dataset.y_test, test_samples)
    if validation is None:
        x_val, y_val = prepare(dataset.x_val, dataset.y_val, validation_samples)
        return Splits(x_train, y_train, x_val, y_val, x_test, y_test)
    if held_out == 0:  # validate on the test set (the same arrays, not a copy)
        return Splits(x_train, y_train, x_test, y_test, x_test, y_test)
    x_val, y_val = prepare(dataset.x_train[val], dataset.y_train[val], validation_samples)
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test)
