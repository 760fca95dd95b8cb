"""The one dataset loader: a registered dataset by name, or a user's function.

A workload's dataset is either

* a registered name: a loader registered with `register(name, loader)` (a repository's
  conftest.py registers its own datasets), called with the data directory (``--data-dir`` or
  ``FITBENCH_DATA_DIR``) and whether it may download; or
* a function (with the workload's ``dataset_args``) that returns the data as a mapping with
  ``train`` and ``test`` and, optionally, ``validation``: each an ``(x, y)`` pair of NumPy
  arrays, or a finite ``tf.data.Dataset`` of unbatched ``(x, y)`` elements (read into arrays
  once). ``x`` may be one array, a dict of named inputs or a tuple of inputs, as Keras' ``fit``
  takes them (and ``y`` likewise, for a model with several outputs). Shapes (per input), classes
  and sample counts come from the data. Its record names the function,
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

# A model's inputs (or targets) as Keras' fit takes them: one array, a dict of named arrays, or a
# tuple of arrays; every array has one row per sample.
Arrays = np.ndarray | Mapping[str, np.ndarray] | tuple[np.ndarray, ...]


def map_arrays(function: Callable[[np.ndarray], Any], arrays: Arrays) -> Any:
    """`function` applied to each array of `arrays`, in the same structure."""
    if isinstance(arrays, Mapping):
        return {name: function(array) for name, array in arrays.items()}
    if isinstance(arrays, tuple | list):
        return tuple(function(array) for array in arrays)
    return function(arrays)


def leaves(arrays: Arrays) -> list[np.ndarray]:
    """The arrays of `arrays`, in order."""
    if isinstance(arrays, Mapping):
        return list(arrays.values())
    return list(arrays) if isinstance(arrays, tuple | list) else [arrays]


def rows(arrays: Arrays) -> int:
    """How many samples `arrays` holds (every array has as many rows)."""
    return len(leaves(arrays)[0])


def sample_shape(arrays: Arrays) -> Any:
    """Each sample's shape: a tuple, or a dict or tuple of them for several inputs."""
    return map_arrays(lambda array: tuple(array.shape[1:]), arrays)


def plain_shape(shape: Any) -> Any:
    """A sample shape as a record stores it (lists, or a dict of lists)."""
    if isinstance(shape, Mapping):
        return {str(name): list(each) for name, each in shape.items()}
    if shape and isinstance(shape[0], tuple | list):
        return [list(each) for each in shape]
    return list(shape)


class DatasetError(Exception):
    """Base class of the errors this module raises."""


class DatasetNotFound(DatasetError):
    """No location in the lookup order holds the dataset."""


class CorruptDataset(DatasetError):
    """A dataset file exists but its content is not valid (the message names the file, the
    problem and the fix)."""


class UnreadableDataset(DatasetError):
    """A dataset file exists but cannot be read (permissions)."""


class SplitError(DatasetError, ValueError):
    """The workload asks for a split the data cannot give (no validation part, none left to train)."""


@dataclass(frozen=True)
class Dataset:
    """A dataset's arrays as loaded: a registered loader's (uint8 images scaled by the workload's
    pixel_scale when `images`), or what a user's function returned."""

    name: str
    x_train: Arrays
    y_train: Arrays
    x_test: Arrays
    y_test: Arrays
    source: str
    x_val: Arrays | None = None  # a function's own validation split
    y_val: Arrays | None = None
    images: bool = True  # uint8 pixels, scaled by pixel_scale and reshaped by split()
    # What identifies it in a record: the registered name, or {function, args, fingerprint}.
    identity: str | Mapping[str, Any] = ""
    classes: int | None = field(default=None)  # integer labels: how many classes (from the data)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={rows(self.y_train)}, test={rows(self.y_test)}, "
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
    expected = ("return {'train': (x, y), 'validation': (x, y), 'test': (x, y)} of NumPy arrays (x may be a "
                "dict or tuple of arrays: several inputs), or unbatched tf.data.Datasets of (x, y); 'validation' "
                "is optional")
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
        if rows(x) != rows(y) or rows(x) == 0:
            raise DatasetError(f"dataset function {name}: {part} has {rows(x)} inputs and {rows(y)} targets; "
                               "give as many of each, at least one")
        for what, arrays, train in (("inputs", x, parts["train"][0]), ("targets", y, parts["train"][1])):
            if sample_shape(arrays) != sample_shape(train):
                raise DatasetError(f"dataset function {name}: {part} {what} have shape {sample_shape(arrays)} per "
                                   f"sample, train {what} {sample_shape(train)}")
    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    classes = None
    if isinstance(y_train, np.ndarray) and np.issubdtype(y_train.dtype, np.integer) and y_train.ndim == 1:
        classes = int(max(int(y.max()) for _, y in parts.values())) + 1
    identity = {"function": name, "args": _plain(dict(args)), "fingerprint": fingerprint(parts)}
    return Dataset(name, x_train, y_train, x_test, y_test, source=f"function {name}", x_val=x_val, y_val=y_val,
                   images=False, identity=identity, classes=classes)


def _arrays(name: str, part: str, value: Any, expected: str) -> tuple[Arrays, Arrays]:
    import tensorflow as tf  # only for a function that returns tf.data

    if isinstance(value, tf.data.Dataset):
        if value.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise DatasetError(f"dataset function {name}: {part} is an infinite tf.data.Dataset; give a finite "
                               "one (no repeat()), fitbench makes the epochs")
        elements = list(value.as_numpy_iterator())
        if not elements or not all(isinstance(e, tuple) and len(e) == 2 for e in elements[:1]):
            raise DatasetError(f"dataset function {name}: {part} must yield unbatched (x, y) pairs")
        value = tuple(_stacked([element[index] for element in elements]) for index in (0, 1))
    if not (isinstance(value, tuple | list) and len(value) == 2):
        raise DatasetError(f"dataset function {name}: {part} is {type(value).__name__}; it must {expected}")
    return _structure(name, part, "inputs", value[0]), _structure(name, part, "targets", value[1])


def _stacked(samples: list[Any]) -> Any:
    """One array per input from a tf.data.Dataset's unbatched samples (arrays, dicts or tuples)."""
    first = samples[0]
    if isinstance(first, Mapping):
        return {key: np.stack([sample[key] for sample in samples]) for key in first}
    if isinstance(first, tuple):
        return tuple(np.stack([sample[index] for sample in samples]) for index in range(len(first)))
    return np.stack(samples)


def _structure(name: str, part: str, what: str, value: Any) -> Arrays:
    """A part's inputs or targets as numeric arrays: one array, a dict of named arrays, or a tuple
    of arrays (a list or tuple counts as several only when it holds arrays, as in Keras)."""
    if isinstance(value, Mapping):
        if not value:
            raise DatasetError(f"dataset function {name}: {part} {what} are an empty dict; give one array per input")
        arrays = {str(key): _numeric(name, part, f"{what} {key!r}", array) for key, array in value.items()}
    elif isinstance(value, tuple | list) and value and all(hasattr(array, "shape") for array in value):
        arrays = tuple(_numeric(name, part, f"{what} {index}", array) for index, array in enumerate(value))
    else:
        return _numeric(name, part, what, value)
    counts = [len(array) for array in leaves(arrays)]
    if len(set(counts)) > 1:
        raise DatasetError(f"dataset function {name}: {part} {what} have different numbers of rows ({counts}); "
                           "give every input one row per sample")
    return arrays


def _numeric(name: str, part: str, what: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf" or array.ndim == 0:
        raise DatasetError(f"dataset function {name}: {part} {what} are {array.dtype} of shape {array.shape}; "
                           "give numeric arrays with one row per sample (several inputs: a dict or tuple of them)")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DatasetError(f"dataset function {name}: {part} {what} hold NaN or infinite values")
    return array


def fingerprint(parts: Mapping[str, tuple[Arrays, Arrays]], first: int = 256) -> str:
    """A short content hash: every part's shapes and dtypes, and the bytes of its first rows."""
    digest = hashlib.sha256()
    for part in sorted(parts):
        for structure in parts[part]:
            for array in leaves(structure):
                digest.update(f"{part}:{array.shape}:{array.dtype.str};".encode())
                digest.update(np.ascontiguousarray(array[:first]).tobytes())
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
    """Train, validation and test arrays ready for a model (each part's inputs and targets one
    array, or a dict or tuple of them): float32 in [0, 1] for images, int32 labels."""

    x_train: Arrays
    y_train: Arrays
    x_val: Arrays
    y_val: Arrays
    x_test: Arrays
    y_test: Arrays

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": rows(self.y_train), "validation": rows(self.y_val), "test": rows(self.y_test)}


def held_out_count(dataset: Dataset, validation: int | float | str | None) -> int:
    """How many training samples `validation` holds out (0 for the test set or the data's own split)."""
    total = rows(dataset.y_train)
    if validation is None:
        if dataset.x_val is None:
            raise SplitError(f"{dataset.name} has no validation split of its own: give the workload "
                             "validation= a count or fraction of the training samples, or 'test'")
        held_out = 0
    elif validation == "test":
        held_out = 0
    elif isinstance(validation, str):
        raise SplitError(f"validation={validation!r}: give a count, a fraction, 'test', or None")
    else:
        held_out = int(round(validation * total)) if isinstance(validation, float) else int(validation)
    if not 0 <= held_out < total:
        raise SplitError(f"validation={validation!r} leaves no training samples out of {total}")
    return held_out


def split_sizes(dataset: Dataset, validation: int | float | str | None, train_samples: int | None = None,
                validation_samples: int | None = None, test_samples: int | None = None) -> dict[str, int]:
    """The train and validation sample counts `split` gives, without building its arrays."""
    held_out = held_out_count(dataset, validation)

    def kept(count: int, keep: int | None) -> int:
        return count if keep is None else min(count, keep)

    if validation is None:
        val = kept(rows(dataset.y_val), validation_samples)
    elif held_out == 0:  # the test set validates
        val = kept(rows(dataset.y_test), test_samples)
    else:
        val = kept(held_out, validation_samples)
    return {"train": kept(rows(dataset.y_train) - held_out, train_samples), "validation": val}


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
    total = rows(dataset.y_train)
    held_out = held_out_count(dataset, validation)
    if validation_at == "start":
        val, train = slice(0, held_out), slice(held_out, total)
    elif validation_at == "end":
        train, val = slice(0, total - held_out), slice(total - held_out, total)
    else:
        raise ValueError(f"validation_at must be 'start' or 'end', not {validation_at!r}")

    def prepare(inputs: Arrays, targets: Arrays, keep: int | None, part: slice = slice(None)):
        inputs, targets = (map_arrays(lambda array: array[part][:keep], each) for each in (inputs, targets))
        if dataset.images:
            shape = input_shape or inputs.shape[1:]
            inputs = (inputs.astype(np.float32) * np.float32(pixel_scale)).reshape((len(inputs), *shape))
        else:
            inputs = map_arrays(lambda array: array.astype(np.float32) if array.dtype.kind == "f" else array, inputs)
            if input_shape is not None:
                if not isinstance(inputs, np.ndarray):
                    raise ValueError(f"input_shape={input_shape} names one input, and the data has several "
                                     f"({sample_shape(inputs)}); leave input_shape out, the shapes come from the data")
                inputs = inputs.reshape((len(inputs), *input_shape))
        targets = map_arrays(lambda array: array.astype(np.int32) if array.dtype.kind in "iub"
                             else array.astype(np.float32), targets)
        return inputs, targets

    x_train, y_train = prepare(dataset.x_train, dataset.y_train, train_samples, train)
    x_test, y_test = prepare(dataset.x_test, dataset.y_test, test_samples)
    if validation is None:
        x_val, y_val = prepare(dataset.x_val, dataset.y_val, validation_samples)
        return Splits(x_train, y_train, x_val, y_val, x_test, y_test)
    if held_out == 0:  # validate on the test set (the same arrays, not a copy)
        return Splits(x_train, y_train, x_test, y_test, x_test, y_test)
    x_val, y_val = prepare(dataset.x_train, dataset.y_train, validation_samples, val)
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test)
